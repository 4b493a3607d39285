"""The measure registry: every public similarity measure with the facts callers need to use it right.

``get(name)`` returns a `MeasureInfo`; ``available(level=None)`` lists names. Callers (the engine, the CLI, the
analysis code, the report and the documentation's measure reference) look up direction, the meaning of
"larger", cost, conventions and invariances here instead of hard-coding them per measure. Each flag is tested
against the function's behaviour (``tests/test_registry.py``).

Invariance flags say that ``f(X T1, Y T2) == f(X, Y)`` for maps ``T1``, ``T2`` of the class applied to either
side independently (for attention measures: X, Y are layers and ``"permutation"`` permutes heads):

- ``"permutation"``: permuting neurons (columns);
- ``"orthogonal"``: any orthogonal map;
- ``"isotropic_scaling"``: multiplying by a positive constant;
- ``"invertible_linear"``: any invertible linear map, on either side;
- ``"invertible_linear_y_only"``: any invertible linear map of Y (the regression target side); X side not.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from reprsim.measures._info import CCA as _CCA
from reprsim.measures._info import INVARIANCES, LEVELS, Level, MeasureInfo
from reprsim.measures._info import LINEAR_COST as _LINEAR_COST
from reprsim.measures._info import NEURON_SCALING as _NEURON_SCALING
from reprsim.measures._info import ORTHO as _ORTHO
from reprsim.measures._info import PER_NEURON_X as _PER_NEURON_X
from reprsim.measures.attention import attention_cka, attention_js, attention_pearson
from reprsim.measures.cca import cca_r2, cca_rho, pwcca, svcca
from reprsim.measures.cka import debiased_cka, linear_cka, minibatch_cka, rbf_cka
from reprsim.measures.knn import DEFAULT_K, mutual_knn
from reprsim.measures.neuron import maxsim
from reprsim.measures.procrustes import angular_distance, procrustes, procrustes_distance
from reprsim.measures.regression import linreg, r2_lr
from reprsim.measures.rsa import rsa

__all__ = ["INVARIANCES", "LEVELS", "Level", "MeasureInfo", "available", "get", "parse_spec"]

_WU_2020 = "Wu et al. 2020, Similarity Analysis of Contextual Word Representation Models (ACL)"
_KORNBLITH_2019 = "Kornblith et al. 2019, Similarity of Neural Network Representations Revisited (ICML)"
_CCA_CONVENTION = (
    "Columns are centred; the rank of each side counts singular values above max(n, p) eps s_max and above the "
    "input's own rounding (float32/float16 storage); constant neurons span nothing and are dropped."
)

_CORE_MEASURES = (
    MeasureInfo(
        name="maxsim", function=maxsim, level="neuron", symmetric=False, larger_is_similar=True,
        invariances=_NEURON_SCALING, needs_subsample=False, streamable=True,
        description="mean over neurons of X of the best |Pearson| with a neuron of Y (Wu et al.)",
        definition="sim(X -> Y) = mean over neurons i of X of max over neurons j of Y of |Pearson(x_i, y_j)|.",
        convention="Constant neurons (zero variance) are excluded, counted and reported with a warning.",
        reference=_WU_2020 + ' ("neuronsim")', cost=_LINEAR_COST,
    ),
    MeasureInfo(
        name="linreg", function=linreg, level="mixed", symmetric=False, larger_is_similar=True,
        invariances=_PER_NEURON_X, needs_subsample=False, streamable=True,
        description="mean multiple correlation of each neuron of X regressed on all of Y (Wu et al. mixedsim)",
        definition="sim(X -> Y) = mean over neurons x_i of X of ||U^T x_i|| / ||x_i||, with the neurons "
        "standardised and U an orthonormal basis of Y's column space: the multiple correlation of x_i on Y.",
        convention=_CCA_CONVENTION, reference=_WU_2020 + ' ("mixedsim")', cost=_LINEAR_COST,
    ),
    MeasureInfo(
        name="r2_lr", function=r2_lr, level="mixed", symmetric=False, larger_is_similar=True,
        invariances=_ORTHO | {"invertible_linear_y_only"}, needs_subsample=False, streamable=True,
        description="fraction of X's variance explained by linear regression on Y (Kornblith et al.)",
        definition="R2_LR(X -> Y) = ||Q_Y^T X||_F^2 / ||X||_F^2 on centred data, Q_Y an orthonormal basis of Y.",
        convention=_CCA_CONVENTION, reference=_KORNBLITH_2019, cost=_LINEAR_COST,
    ),
    MeasureInfo(
        name="cca_r2", similarity_repository_id="cca-squared_score",
        function=cca_r2, level="mixed", symmetric=True, larger_is_similar=True,
        invariances=_CCA, needs_subsample=False, streamable=True,
        description="mean squared canonical correlation R2_CCA",
        definition="R2_CCA = sum_k rho_k^2 / m, the rho_k being the singular values of Q_X^T Q_Y and "
        "m = min(rank X, rank Y) (Yanai's generalised coefficient).",
        convention=_CCA_CONVENTION + " Warns when n < 10 x max(p, q).",
        reference="Hotelling 1936; as used by " + _KORNBLITH_2019, cost=_LINEAR_COST,
    ),
    MeasureInfo(
        name="cca_rho", similarity_repository_id="cca-score",
        function=cca_rho, level="mixed", symmetric=True, larger_is_similar=True,
        invariances=_CCA, needs_subsample=False, streamable=True,
        description="mean canonical correlation rho_CCA",
        definition="rho_CCA = sum_k rho_k / m over the m = min(rank X, rank Y) canonical correlations.",
        convention=_CCA_CONVENTION + " Warns when n < 10 x max(p, q).",
        reference="Hotelling 1936; as used by " + _KORNBLITH_2019, cost=_LINEAR_COST,
    ),
    MeasureInfo(
        name="svcca", similarity_repository_id="svcca-var=0.99-score",
        function=svcca, level="mixed", symmetric=True, larger_is_similar=True,
        invariances=_ORTHO, needs_subsample=False, streamable=True,
        description="mean canonical correlation of the top singular directions (99% of variance; Raghu et al.)",
        definition="Keep the top-k singular directions of each centred matrix explaining a fraction `keep` "
        "(0.99) of its variance, then take rho_CCA of the two reduced matrices.",
        convention="convention='raghu' (default): k is the smallest count whose cumulative variance reaches "
        "`keep`, neurons only centred. convention='wu': the directions whose cumulative fraction stays "
        "strictly below `keep`, neurons standardised (Wu et al.'s code).",
        reference="Raghu et al. 2017, SVCCA (NeurIPS); " + _WU_2020, cost=_LINEAR_COST,
    ),
    MeasureInfo(
        name="pwcca", similarity_repository_id="pwcca-score",
        function=pwcca, level="mixed", symmetric=False, larger_is_similar=True,
        invariances=_PER_NEURON_X, needs_subsample=False, streamable=True,
        description="canonical correlations weighted by how much of X each accounts for (Morcos et al.)",
        definition="sim(X -> Y) = sum_k alpha_k rho_k / sum_k alpha_k, with alpha_k = sum_i |<h_k, x_i>| over "
        "X's neurons x_i and h_k X's unit-norm canonical variates.",
        convention=_CCA_CONVENTION + " The weights use X's own coordinates, so PWCCA is not invariant to "
        "rotations of X.",
        reference="Morcos et al. 2018, Insights on representational similarity (NeurIPS)", cost=_LINEAR_COST,
    ),
    MeasureInfo(
        name="linear_cka", similarity_repository_id="cka-kernel=linear-hsic=gretton-score",
        function=linear_cka, level="distributed", symmetric=True, larger_is_similar=True,
        invariances=_ORTHO, needs_subsample=False, streamable=True,
        description="linear centered kernel alignment (Kornblith et al.)",
        definition="CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) on centred X and Y, equal to "
        "HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with linear kernels.",
        convention="The biased HSIC estimator; computed in feature space (p x q) or from n x n Grams, "
        "whichever is cheaper; both give the same value.",
        reference=_KORNBLITH_2019, cost="O(n p q); memory O(p q) (or O(n^2) in Gram space)",
    ),
    MeasureInfo(
        name="debiased_cka", similarity_repository_id="cka-kernel=linear-hsic=song-score",
        function=debiased_cka, level="distributed", symmetric=True, larger_is_similar=True,
        invariances=_ORTHO, needs_subsample=False, streamable=True,
        description="linear CKA with the unbiased HSIC estimator (Song et al.)",
        definition="The CKA ratio with the unbiased HSIC estimator (U-centred Grams with zeroed diagonal).",
        convention="Needs at least 4 rows; can be slightly negative for unrelated data.",
        reference="Song et al. 2012 (JMLR); Szekely & Rizzo 2014", cost=_LINEAR_COST,
    ),
    MeasureInfo(
        name="minibatch_cka", function=minibatch_cka, level="distributed", symmetric=True,
        larger_is_similar=True, invariances=_ORTHO, needs_subsample=False, streamable=True,
        description="linear CKA from unbiased HSIC summed over minibatches (Nguyen et al.)",
        definition="Unbiased HSIC_1 terms summed over minibatches of rows; the CKA ratio is taken at the end.",
        convention="Rows are shuffled with `seed` before batching (batch_size 256); a last batch under 4 rows "
        "joins the previous one. Not in 'all': linear and debiased CKA give the exact values.",
        reference="Nguyen et al. 2021, Do wide and deep networks learn the same things? (ICLR)",
        cost="O(n b (p + q)) for batch size b; memory O(b^2)",
    ),
    MeasureInfo(
        name="rbf_cka", function=rbf_cka, level="distributed", symmetric=True, larger_is_similar=True,
        invariances=_ORTHO, needs_subsample=True, streamable=False,
        description="CKA with RBF kernels, bandwidth 0.8 x median distance (Kornblith et al.)",
        definition="CKA with K_ij = exp(-d_ij^2 / (2 t^2 m)), d_ij the Euclidean distance between rows i and j "
        "and m the median of all squared distances.",
        convention="t = 0.8 by default; the median includes the diagonal zeros, as in Kornblith et al.'s code. "
        "Runs on a seeded row subsample (5,000 rows in `compare`).",
        reference=_KORNBLITH_2019, cost="O(n^2 (p + q)); memory O(n^2)",
    ),
    MeasureInfo(
        name="procrustes", similarity_repository_id="procrustes-score",
        function=procrustes, level="distributed", symmetric=True, larger_is_similar=True,
        invariances=_ORTHO, needs_subsample=False, streamable=True,
        description="normalised orthogonal Procrustes similarity (nuclear norm of X^T Y)",
        definition="||X^T Y||_* (nuclear norm) after centring and scaling each side to unit Frobenius norm.",
        convention="This is also the normalised Bures similarity.",
        reference="Ding et al. 2021, Grounding representation similarity (NeurIPS)", cost=_LINEAR_COST,
    ),
    MeasureInfo(
        name="procrustes_distance", similarity_repository_id="procrustes-distance=squared_euclidean",
        function=procrustes_distance, level="distributed", symmetric=True,
        larger_is_similar=False, invariances=_ORTHO, needs_subsample=False, streamable=True,
        description="squared Procrustes distance 2 - 2 x similarity (Ding et al.)",
        definition="2 - 2 ||X^T Y||_* on centred, unit-Frobenius-norm X and Y.",
        convention="A distance: 0 for identical inputs.",
        reference="Ding et al. 2021, Grounding representation similarity (NeurIPS)", cost=_LINEAR_COST,
    ),
    MeasureInfo(
        name="angular_distance", similarity_repository_id="procrustes-distance=angular",
        function=angular_distance, level="distributed", symmetric=True,
        larger_is_similar=False, invariances=_ORTHO, needs_subsample=False, streamable=True,
        description="angular Procrustes distance arccos(similarity) (Williams et al.)",
        definition="arccos(||X^T Y||_*) on centred, unit-Frobenius-norm X and Y: a metric on shapes.",
        convention="A distance in radians: 0 for identical inputs.",
        reference="Williams et al. 2021, Generalized shape metrics on neural representations (NeurIPS)",
        cost=_LINEAR_COST,
    ),
    MeasureInfo(
        name="rsa", similarity_repository_id="rsa-rdm=correlation-compare=spearman",
        function=rsa, level="distributed", symmetric=True, larger_is_similar=True,
        invariances=_NEURON_SCALING, needs_subsample=True, streamable=False,
        description="Spearman correlation of 1 - Pearson dissimilarity matrices",
        definition="Spearman correlation between the upper triangles of the two n x n dissimilarity matrices "
        "1 - Pearson(row_i, row_j).",
        convention="Average ranks for ties; dissimilarities agreeing to about 1e-12 count as tied. A row with "
        "no variation is an error naming it. Runs on a seeded row subsample.",
        reference="Kriegeskorte et al. 2008, Representational similarity analysis (Front. Syst. Neurosci.)",
        cost="O(n^2 (p + q) + n^2 log n); memory O(n^2)",
    ),
    MeasureInfo(
        name="mutual_knn", similarity_repository_id="mutual_knn-topk=10",
        function=mutual_knn, level="distributed", symmetric=True, larger_is_similar=True,
        invariances=_NEURON_SCALING, needs_subsample=True, streamable=False,
        description=f"shared fraction of each row's {DEFAULT_K} nearest neighbours (Huh et al.)",
        definition=f"mean over rows i of |N_X(i) & N_Y(i)| / k, N(i) the k = {DEFAULT_K} nearest rows of i by "
        "inner product after clipping and L2-normalising rows (i itself excluded).",
        convention="Clipped at the exact 0.95 quantile of |x| (the exact=True path of Huh et al.'s code); ties "
        "go to the lower row index. Chance level is k / (n - 1). Runs on a seeded row subsample.",
        reference="Huh et al. 2024, The Platonic Representation Hypothesis (ICML)",
        cost="O(n^2 (p + q)) in blocks; memory O(n k)",
    ),
    MeasureInfo(
        name="attention_js", function=attention_js, level="attention", symmetric=False, larger_is_similar=True,
        invariances=frozenset({"permutation"}), needs_subsample=False, streamable=True,
        description="mean over heads of the best head's 1 - Jensen-Shannon divergence (Wu et al.)",
        definition="s(h, h') = 1 - mean over (sentence, query word) of JS(a_h,i || a_h',i); the layer score is "
        "the mean over heads h of A of max over heads h' of B of s(h, h').",
        convention="Natural log, so the floor is 1 - ln 2; near-uniform attention scores high against "
        "everything, so read it beside a random-model baseline.",
        reference=_WU_2020, cost="O(sum_s T_s^2 H_A H_B) over sentences s of T_s words",
    ),
    MeasureInfo(
        name="attention_pearson", function=attention_pearson, level="attention", symmetric=False,
        larger_is_similar=True, invariances=frozenset({"permutation"}), needs_subsample=False, streamable=True,
        description="mean over heads of the best head's row-wise Pearson correlation (Wu et al.)",
        definition="As attention_js with s(h, h') the mean Pearson correlation of the two heads' attention rows.",
        convention="Constant rows (uniform attention, one-word sentences) have no correlation: they are left out "
        "of the mean and reported in a warning.",
        reference=_WU_2020, cost="O(sum_s T_s^2 H_A H_B) over sentences s of T_s words",
    ),
    MeasureInfo(
        name="attention_cka", function=attention_cka, level="attention", symmetric=True, larger_is_similar=True,
        invariances=frozenset({"permutation"}), needs_subsample=False, streamable=True,
        description="linear CKA between the heads' flattened attention maps (Wu et al.)",
        definition="Linear CKA between two matrices whose rows are all (sentence, i, j) cells and whose columns "
        "are the heads of each layer.",
        convention="The cells are centred over all sentences together.",
        reference=_WU_2020, cost="O(sum_s T_s^2 H_A H_B) over sentences s of T_s words",
    ),
)



def _block_measures() -> tuple[MeasureInfo, ...]:
    """Measures the engine derives from its blocks beyond the core set (shape metrics, Bures, GULP, ...)."""
    from reprsim.measures._block_rows import block_measure_rows

    return block_measure_rows()


def _neighbourhood_measures() -> tuple[MeasureInfo, ...]:
    """Measures on one k-NN graph, RDM or distance matrix per representation (Jaccard, CKNNA, RSA variants, ...)."""
    from reprsim.measures._neighbourhood_rows import neighbourhood_measure_rows

    return neighbourhood_measure_rows()


_MEASURES = tuple(sorted(
    _CORE_MEASURES + _block_measures() + _neighbourhood_measures(),
    key=lambda info: LEVELS.index(info.level),  # by level, neuron first; within a level as listed
))
_BY_NAME = MappingProxyType({info.name: info for info in _MEASURES})


_SPEC = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$", re.DOTALL)
_FIXED = frozenset({"X", "Y", "A", "B"})  # the compared inputs, never options


def _format_value(value: Any) -> str:
    if isinstance(value, str) and value.isidentifier():
        return value
    return repr(value)


def _parse_value(text: str, spec: str) -> Any:
    text = text.strip()
    if text.isidentifier() and text not in {"True", "False", "None"}:
        return text  # a bare word: a string option such as rdm=cosine
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"measure {spec!r}: option value {text!r} is not a number, string or boolean") from None


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split a measure spec into its registry name and options.

    A spec is a registry name, optionally followed by keyword options of its function in parentheses:
    ``"linear_cka"``, ``"svcca(keep=0.9, convention=wu)"``, ``"rbf_cka(t=0.4)"``. Bare words are strings.

    Parameters
    ----------
    spec
        The spec.

    Returns
    -------
    tuple
        (name, options).

    Raises
    ------
    ValueError
        If the spec is malformed, or an option is given twice or has no value.
    """
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(f"measure {spec!r} is not a name or name(option=value, ...)")
    name, inner = match.group(1), match.group(2)
    options: dict[str, Any] = {}
    if inner is not None and inner.strip():
        for part in inner.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or not key.isidentifier() or not value.strip():
                raise ValueError(f"measure {spec!r}: options are written key=value, got {part.strip()!r}")
            if key in options:
                raise ValueError(f"measure {spec!r}: option {key!r} is given twice")
            options[key] = _parse_value(value, spec)
    return name, options


def _like_default(value: Any, default: Any) -> Any:
    """Give a number the type of its option's numeric default where that is exact; anything else as given.

    So ``lam=0`` and ``lam=0.0`` are one spec, with one canonical name.
    """
    numeric = (int, float)
    if isinstance(value, bool) or isinstance(default, bool) or not isinstance(value, numeric):
        return value
    if isinstance(default, float):
        return float(value)
    if isinstance(default, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _canonical(name: str, options: Mapping[str, Any]) -> str:
    if not options:
        return name
    return f"{name}({', '.join(f'{k}={_format_value(options[k])}' for k in sorted(options))})"


def _option_names(function: Callable[..., Any]) -> list[str]:
    parameters = inspect.signature(function).parameters.values()
    return [p.name for p in parameters if p.name not in _FIXED and p.default is not inspect.Parameter.empty]


def get(name: str) -> MeasureInfo:
    """Look up a measure by name or by spec with options.

    Parameters
    ----------
    name
        A registry name, e.g. ``"linear_cka"``, or a spec with keyword options of the measure's function,
        e.g. ``"svcca(keep=0.9)"`` (see `parse_spec`). Options equal to the function's defaults are dropped,
        so ``"rbf_cka(t=0.8)"`` is ``"rbf_cka"``.

    Returns
    -------
    MeasureInfo
        The measure's registry entry; for a spec with options, a copy whose `name` is the canonical spec,
        whose `function` has the options bound and whose `options` lists them.

    Raises
    ------
    KeyError
        If no measure has that name; the message lists the available names.
    ValueError
        If the spec is malformed or names an option the measure's function does not take (listing those it
        takes).
    """
    base_name, options = parse_spec(name)
    try:
        info = _BY_NAME[base_name]
    except KeyError:
        raise KeyError(f"unknown measure {base_name!r}; available: {', '.join(available())}") from None
    if not options:
        return info
    allowed = _option_names(info.function)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takes = ", ".join(allowed) if allowed else "no options"
        raise ValueError(f"measure {base_name!r} has no option {', '.join(map(repr, unknown))}; it takes: {takes}")
    defaults = {p.name: p.default for p in inspect.signature(info.function).parameters.values()}
    options = {k: _like_default(v, defaults[k]) for k, v in options.items()}
    options = {k: v for k, v in options.items() if not (type(v) is type(defaults[k]) and v == defaults[k])}
    if not options:
        return info
    return replace(info, name=_canonical(base_name, options), function=functools.partial(info.function, **options),
                   options=MappingProxyType(dict(options)), base=base_name,
                   similarity_repository_id="")  # the catalogue's id names the default convention only


def available(level: str | None = None) -> list[str]:
    """Names of the registered measures, in registry order (neuron level first, attention last).

    Parameters
    ----------
    level
        Only the measures of this level (``"neuron"``, ``"mixed"``, ``"distributed"``, ``"attention"``).

    Returns
    -------
    list of str
        The measure names.

    Raises
    ------
    ValueError
        If `level` is not a known level.
    """
    if level is not None and level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS} or None, got {level!r}")
    return [info.name for info in _MEASURES if level is None or info.level == level]
