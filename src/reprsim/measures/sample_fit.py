"""Per-representation fits of the n x n measures (RBF CKA, RSA, distance correlation, the neighbourhood measures).

Each of these builds an n x n object per representation (a centred Gram, a ranked RDM, a k-NN graph) and
then compares two such objects cheaply. An all-pairs comparison of R representations therefore fits each
representation once (R fits) and scores every pair from the fits, instead of rebuilding both objects for each
of the R^2 pairs. ``score_sample(fit_sample(m, X, **o), fit_sample(m, Y, **o))`` equals ``m(X, Y, **o)`` on the
same rows, and a fit's options default to those of the measure's one-shot function.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from reprsim.arrays import ArrayLike, as_matrix, centre
from reprsim.measures.cka import debiased_cka, linear_cka, rbf_cka, rbf_gram, require_variation
from reprsim.measures.hsic import require_rows, u_centre_
from reprsim.measures.knn import (
    DEFAULT_K,
    KnnGraph,
    check_clip_quantile,
    check_k,
    check_k_below_rows,
    knn_graph_bytes,
    mutual_knn,
    prepared_graph,
    prepared_rows,
    score_mutual_knn,
)
from reprsim.measures.neighbours import (
    check_second_order_vectors,
    cknna,
    cycle_knn,
    jaccard_knn,
    rank_similarity,
    score_cknna,
    score_cycle_knn,
    score_jaccard,
    score_rank_similarity,
    score_second_order_cosine,
    second_order_cosine,
)
from reprsim.measures.rsa import distance_correlation, rsa
from reprsim.measures.rsm import (
    centred_distances,
    check_rdm_options,
    compare_vectors,
    comparison_vector,
    double_centred_compact,
    packed_symmetric,
    rdm_upper,
)

# The k-NN measures: the one-shot function, the score of two graphs, the smallest k, whether the graph keeps
# its unit rows (to read similarities outside it).
_GRAPH_MEASURES: dict[str, tuple[Callable[..., float], Callable[[KnnGraph, KnnGraph], float], int, bool]] = {
    "mutual_knn": (mutual_knn, score_mutual_knn, 1, False),
    "jaccard_knn": (jaccard_knn, score_jaccard, 1, False),
    "rank_similarity": (rank_similarity, score_rank_similarity, 1, False),
    "second_order_cosine": (second_order_cosine, score_second_order_cosine, 1, True),
    "cknna": (cknna, score_cknna, 2, False),
    "cycle_knn": (cycle_knn, score_cycle_knn, 1, False),
}
_OTHER_MEASURES: dict[str, Callable[..., float]] = {
    "rbf_cka": rbf_cka, "rsa": rsa, "distance_correlation": distance_correlation,
    "linear_cka": linear_cka, "debiased_cka": debiased_cka,
}
SAMPLE_FIT_MEASURES: tuple[str, ...] = ("rbf_cka", "rsa", "distance_correlation", *_GRAPH_MEASURES,
                                        "linear_cka", "debiased_cka")
# Linear and debiased CKA in sample space: the engine's Gram-space route (a fit is a Gram matrix).
GRAM_SPACE_MEASURES: tuple[str, ...] = ("linear_cka", "debiased_cka")
# Options that choose the rows (the caller does) or the space (a fit is the Gram-space one) rather than the fit.
_ROW_OPTIONS = frozenset({"max_rows", "seed", "space"})


def _one_shot(measure: str) -> Callable[..., float]:
    return _GRAPH_MEASURES[measure][0] if measure in _GRAPH_MEASURES else _OTHER_MEASURES[measure]


def fit_options(measure: str) -> dict[str, Any]:
    """The options a fit of `measure` takes, with their defaults (those of the measure's one-shot function).

    Parameters
    ----------
    measure
        One of `SAMPLE_FIT_MEASURES`.

    Returns
    -------
    dict
        Option name to default, e.g. ``{"k": 10, "clip_quantile": 0.95}`` for ``"mutual_knn"``.

    Raises
    ------
    ValueError
        For a measure without a fit.
    """
    if measure not in SAMPLE_FIT_MEASURES:
        raise ValueError(f"no per-representation fit for measure {measure!r}; fitted measures: "
                         f"{', '.join(SAMPLE_FIT_MEASURES)}")
    parameters = inspect.signature(_one_shot(measure)).parameters.values()
    return {p.name: p.default for p in parameters
            if p.default is not inspect.Parameter.empty and p.name not in _ROW_OPTIONS}


@dataclass(frozen=True)
class SampleFit:
    """One representation's n x n object for one measure, made by `fit_sample`.

    Parameters
    ----------
    measure
        One of `SAMPLE_FIT_MEASURES`.
    data
        rbf_cka: the double-centred RBF Gram matrix, packed (see
        `reprsim.measures.rsm.double_centred_compact`) and scaled to unit norm (``n (n + 1) / 2`` float64);
        linear_cka: the same of the linear Gram matrix; debiased_cka: of its U-centred form (so that the
        inner product of two fits is the unbiased HSIC's CKA ratio);
        rsa: the RDM's vector for its comparison (see `reprsim.measures.rsm.comparison_vector`);
        distance_correlation: the packed double-centred distance matrix at unit norm; the neighbourhood
        measures: the representation's `reprsim.measures.knn.KnnGraph`.
    options
        Every option of the fit with its value (defaults filled in), sorted by name; two fits are scored
        together only when these agree.
    n
        Rows of the representation.
    """

    measure: str
    data: torch.Tensor | KnnGraph
    options: tuple[tuple[str, Any], ...] = ()
    n: int = 0

    @property
    def nbytes(self) -> int:
        """Bytes the fit holds."""
        if isinstance(self.data, KnnGraph):
            return self.data.nbytes
        return self.data.numel() * self.data.element_size()

    @property
    def k(self) -> int:
        """The neighbour count of a neighbourhood measure; 0 for the other measures."""
        return int(dict(self.options).get("k", 0))


def sample_fit_bytes(measure: str, n: int, k: int = DEFAULT_K, width: int = 0) -> int:
    """Bytes a `SampleFit` of `measure` on n rows holds (to tile all-pairs work under a memory budget).

    Parameters
    ----------
    measure
        One of `SAMPLE_FIT_MEASURES`; other measures fit nothing (0 bytes).
    n
        Rows of the subsample.
    k
        Neighbours per row, for the neighbourhood measures.
    width
        The representation's width, required for second_order_cosine (its graph keeps the unit rows).

    Returns
    -------
    int
        The bytes: ``4 n (n + 1)`` for rbf_cka and distance_correlation, at most that for rsa,
        ``24 n k`` for a k-NN graph (plus ``8 n width`` for second_order_cosine's unit rows).
    """
    if measure in _GRAPH_MEASURES:
        if keeps_rows(measure) and width < 1:
            raise ValueError(f"{measure}: its fit keeps the unit rows; give the representation's width (width=)")
        return knn_graph_bytes(n, k, with_rows=_GRAPH_MEASURES[measure][3], width=width)
    return 4 * n * (n + 1) if measure in _OTHER_MEASURES else 0


def _unit(v: torch.Tensor, what: str) -> torch.Tensor:
    """Scale v to unit norm in place, refusing a zero or non-finite norm."""
    norm = float(v.norm())
    if not norm > 0.0 or not math.isfinite(norm):
        raise ValueError(f"{what}: the representation's n x n matrix has no variation; the measure is undefined")
    return v.div_(norm)


def _resolved_options(measure: str, given: dict[str, Any]) -> dict[str, Any]:
    """The fit's options: the given ones over the one-shot function's defaults, unknown ones refused."""
    defaults = fit_options(measure)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        takes = ", ".join(defaults) if defaults else "no options"
        raise ValueError(f"{measure}: a per-representation fit has no option {', '.join(map(repr, unknown))}; "
                         f"it takes: {takes}")
    return {**defaults, **given}


def fit_sample(measure: str, X: ArrayLike, *, name: str = "X", **options: Any) -> SampleFit:
    """Fit the n x n object of one representation for one measure, on all of its rows.

    The caller chooses the rows (the measures' own seeded subsample is not applied here), and every
    representation compared must be fitted on the same rows with the same options.

    Parameters
    ----------
    measure
        One of `SAMPLE_FIT_MEASURES`.
    X
        The representation, n x p.
    name
        What the error messages call the representation.
    **options
        Options of the measure's one-shot function other than ``max_rows`` and ``seed`` (see
        `fit_options`): rbf_cka ``t``; rsa ``rdm``, ``compare``; the neighbourhood measures ``k``,
        ``clip_quantile`` (and second_order_cosine ``vectors``). Options not given take the one-shot
        function's defaults.

    Returns
    -------
    SampleFit
        The fit, to be scored with `score_sample`.

    Raises
    ------
    ValueError
        For an unknown `measure` or option, malformed input, an option out of range (`k` is at least the
        number of rows, say), or a representation the measure is undefined on (constant, rows without
        variance, a zero median distance, or an n x n object without variation).
    """
    resolved = _resolved_options(measure, options)
    frozen = tuple(sorted(resolved.items()))
    if measure in _GRAPH_MEASURES:
        _, _, minimum_k, keep_rows = _GRAPH_MEASURES[measure]
        k = check_k(resolved["k"], measure, minimum_k)
        check_clip_quantile(resolved["clip_quantile"], measure)
        if measure == "second_order_cosine":
            check_second_order_vectors(resolved["vectors"])
        x = as_matrix(X, name)
        graph = prepared_graph(x, k, resolved["clip_quantile"], name, measure, keep_rows)
        return SampleFit(measure, graph, frozen, x.shape[0])
    x = as_matrix(X, name)
    n = x.shape[0]
    if measure == "rbf_cka":
        require_variation(x, name, "rbf_cka")
        packed = double_centred_compact(rbf_gram(x, float(resolved["t"]), name))
        return SampleFit(measure, _unit(packed, measure), frozen, n)
    if measure == "rsa":
        check_rdm_options(resolved["rdm"], resolved["compare"])
        upper = rdm_upper(x, resolved["rdm"], name, None)
        return SampleFit(measure, comparison_vector(upper, resolved["compare"], n, name), frozen, n)
    if measure in GRAM_SPACE_MEASURES:
        require_variation(x, name, measure)
        c = centre(x)
        if measure == "linear_cka":
            return SampleFit(measure, _unit(packed_symmetric(c @ c.T), measure), frozen, n)  # centred columns
        require_rows(n, measure)
        return SampleFit(measure, _unit(packed_symmetric(u_centre_(c @ c.T)), measure), frozen, n)
    return SampleFit(measure, centred_distances(x, name), frozen, n)  # distance_correlation


def shared_graph_key(measure: str, options: dict[str, Any]) -> tuple[int, float | None] | None:
    """The (k, clip_quantile) of the k-NN graph that a fit of `measure` with `options` holds, or ``None``.

    Every neighbourhood measure fits the same graph for the same k and clipping, so one graph per
    representation serves all of them (`graph_fit`); second-order cosine adds the unit rows.

    Parameters
    ----------
    measure
        One of `SAMPLE_FIT_MEASURES`.
    options
        The fit's options (defaults filled in as `fit_sample` does).

    Returns
    -------
    tuple or None
        The graph's key, or ``None`` for a measure whose fit is not a graph.
    """
    if measure not in _GRAPH_MEASURES:
        return None
    resolved = _resolved_options(measure, options)
    return int(resolved["k"]), resolved["clip_quantile"]


def keeps_rows(measure: str) -> bool:
    """Whether a fit of `measure` keeps the unit rows beside its k-NN graph (second-order cosine does)."""
    return measure in _GRAPH_MEASURES and _GRAPH_MEASURES[measure][3]


def graph_fit(measure: str, graph: KnnGraph, X: ArrayLike | None = None, *, name: str = "X",
              **options: Any) -> SampleFit:
    """`fit_sample`'s fit of a neighbourhood measure from a graph already built with the same k and clipping.

    Parameters
    ----------
    measure
        A measure with a `shared_graph_key`.
    graph
        The representation's graph, built for a measure with the same key (its unit rows, if any, are not
        used).
    X
        The representation, n x p: needed by second-order cosine, whose fit keeps the unit rows.
    name
        What the error messages call the representation.
    **options
        As `fit_sample`.

    Returns
    -------
    SampleFit
        The fit `fit_sample` would make on the graph's rows.

    Raises
    ------
    ValueError
        For options out of range, a graph whose k is not the options', or a missing `X` or one whose rows
        are not the graph's.
    """
    resolved = _resolved_options(measure, options)
    k = check_k(resolved["k"], measure, _GRAPH_MEASURES[measure][2])
    if graph.k != k:
        raise ValueError(f"{measure}: the graph has k={graph.k}, the fit asks for k={k}")
    rows = None
    if _GRAPH_MEASURES[measure][3]:
        if X is None:
            raise ValueError(f"{measure}: its fit keeps the unit rows; pass the representation (X)")
        check_second_order_vectors(resolved["vectors"])
        x = as_matrix(X, name)
        if x.shape[0] != graph.n:
            raise ValueError(f"{measure}: {name} has {x.shape[0]} rows, its graph {graph.n}")
        rows = prepared_rows(x, resolved["clip_quantile"], name, measure)
    return SampleFit(measure, dataclasses.replace(graph, unit_rows=rows), tuple(sorted(resolved.items())), graph.n)


def fit_sample_deep(measure: str, X: ArrayLike, depth: int, *, name: str = "X",
                    **options: Any) -> tuple[SampleFit, KnnGraph]:
    """`fit_sample` for a neighbourhood measure, with the graph of the `depth` nearest rows as well.

    Resampling that leaves rows out needs each row's nearest neighbours beyond k (see
    `reprsim.engine.knn_inference`); one search to `depth` gives both graphs.

    Parameters
    ----------
    measure
        A neighbourhood measure of `SAMPLE_FIT_MEASURES`.
    X
        The representation, n x p.
    depth
        Neighbours per row of the deep graph, ``k <= depth < n``.
    name
        What the error messages call the representation.
    **options
        As `fit_sample`.

    Returns
    -------
    tuple of (SampleFit, KnnGraph)
        The fit (equal to `fit_sample`'s) and the deep graph (with the unit rows when the measure
        keeps them).

    Raises
    ------
    ValueError
        As `fit_sample`, for a measure without a k-NN graph, or for a depth outside ``[k, n)``.
    """
    if measure not in _GRAPH_MEASURES:
        raise ValueError(f"{measure!r} has no k-NN graph; graph measures: {', '.join(_GRAPH_MEASURES)}")
    resolved = _resolved_options(measure, options)
    _, _, minimum_k, keep_rows = _GRAPH_MEASURES[measure]
    k = check_k(resolved["k"], measure, minimum_k)
    check_clip_quantile(resolved["clip_quantile"], measure)
    if measure == "second_order_cosine":
        check_second_order_vectors(resolved["vectors"])
    x = as_matrix(X, name)
    check_k_below_rows(k, x.shape[0], measure)
    if not k <= depth < x.shape[0]:
        raise ValueError(f"{measure}: depth={depth} must be at least k={k} and below the rows ({x.shape[0]})")
    deep = prepared_graph(x, depth, resolved["clip_quantile"], name, measure, keep_rows)
    first = deep.ranks <= k  # the first k ranks of a deeper search are the k-NN graph (same ties)
    graph = KnnGraph(deep.n, k, deep.keys[first], deep.ranks[first], deep.similarities[first], deep.unit_rows)
    return SampleFit(measure, graph, tuple(sorted(resolved.items())), x.shape[0]), deep


def score_sample(a: SampleFit, b: SampleFit) -> float:
    """The measure's value between two representations, from their fits.

    Parameters
    ----------
    a, b
        Fits of the same measure on the same rows with the same options (see `fit_sample`); for a directed
        measure (cknna, cycle_knn) the value is ``m(X_a, X_b)``.

    Returns
    -------
    float
        The value the measure gives on those rows.

    Raises
    ------
    ValueError
        If the fits differ in measure, rows or options.
    """
    if a.measure != b.measure or a.n != b.n or a.options != b.options:
        raise ValueError(f"fits do not match: {a.measure} on {a.n} rows with {dict(a.options)} vs "
                         f"{b.measure} on {b.n} rows with {dict(b.options)}")
    if isinstance(a.data, KnnGraph) and isinstance(b.data, KnnGraph):
        if a.measure == "second_order_cosine":
            return score_second_order_cosine(a.data, b.data, vectors=str(dict(a.options)["vectors"]))
        return _GRAPH_MEASURES[a.measure][1](a.data, b.data)
    assert isinstance(a.data, torch.Tensor) and isinstance(b.data, torch.Tensor)
    if a.measure == "rsa":
        return compare_vectors(a.data, b.data, str(dict(a.options)["compare"]))
    if a.measure == "distance_correlation":
        return math.sqrt(max(float(torch.dot(a.data, b.data)), 0.0))
    return float(torch.dot(a.data, b.data))
