"""Every linear measure for many pairs of representations from streamed row chunks (`all_pairs`).

One pass over the rows accumulates the requested cross-product blocks (`CrossMoments`); each
representation's decompositions are then computed once (`LinearFit`) and each pair pays only for its own
d x d cross terms. Memory is independent of the number of rows: it is the blocks (8 d_a d_b bytes each) plus
one chunk. When the requested blocks exceed `memory_limit_bytes`, the scheduler (`reprsim.engine.scheduler`)
computes them tile by tile, one pass over the rows per tile. `pair_results` derives the same measures from
`CrossMoments` accumulated (or merged, or grown) by hand.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from reprsim.measures.neuron import NeuronMatch

from .checks import PrecisionChoice, check_precision_choice, resolve_device
from .families import LinearFamily, MomentsFamily, warn_about_fits
from .linear_fit import Directed, SvccaOptions
from .linear_score import MeasureValue, check_measures
from .moments import CrossMoments
from .scheduler import score_pairs
from .sources import RepresentationSource, check_sources

DEFAULT_MEMORY_LIMIT = 4 * 2**30  # bytes of block accumulators per pass before tiling
_NO_LIMIT = 2**62


@dataclass(frozen=True)
class PairResult:
    """The measures of one pair (a, b) of representations.

    Parameters
    ----------
    a, b
        Indices of the two representations in the sources (or moments) compared.
    a_id, b_id
        Their ids.
    n_rows
        The number of rows the measures were computed on.
    values
        Measure name -> a float (symmetric) or a `Directed` (``a_to_b`` = sim(a -> b), ``b_to_a`` =
        sim(b -> a)).
    neurons
        Both directions' `NeuronMatch` (maxsim per neuron) when neuron matches were requested, else ``None``.
    """

    a: int
    b: int
    a_id: Hashable
    b_id: Hashable
    n_rows: int
    values: Mapping[str, MeasureValue]
    neurons: Directed[NeuronMatch] | None = None

    def table_rows(self) -> list[tuple[Hashable, Hashable, str, str, float]]:
        """The pair's values as rows laid out like the results table (docs/design/contracts.md).

        Returns
        -------
        list of tuple
            ``(id_a, id_b, measure, direction, value)`` rows: a directed measure gives two ``"a->b"`` rows,
            (a, b) and (b, a); a symmetric one a ``"sym"`` row.
        """
        rows: list[tuple[Hashable, Hashable, str, str, float]] = []
        for name, value in self.values.items():
            if isinstance(value, Directed):
                rows.append((self.a_id, self.b_id, name, "a->b", value.a_to_b))
                rows.append((self.b_id, self.a_id, name, "a->b", value.b_to_a))
            else:
                rows.append((self.a_id, self.b_id, name, "sym", value))
        return rows


def _check_pair_list(pairs: Literal["all"] | Iterable[tuple[int, int]], n_reps: int) -> list[tuple[int, int]]:
    """The pairs to compare: every a < b for "all", else the given (a, b) index pairs, checked.

    a == b is allowed; each pair at most once, (b, a) being another pair.
    """
    if isinstance(pairs, str):
        if pairs != "all":
            raise ValueError(f"pairs must be 'all' or a list of (a, b) index pairs, got {pairs!r}")
        return [(a, b) for a in range(n_reps) for b in range(a + 1, n_reps)]
    out: list[tuple[int, int]] = []
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"each pair must be two representation indices, got {pair!r}")
        for i in pair:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_reps:
                raise ValueError(f"pair {pair!r}: index {i!r} is not in 0..{n_reps - 1}")
        out.append((int(pair[0]), int(pair[1])))
    if not out:
        raise ValueError("pairs is empty: nothing to compare")
    first_at: dict[tuple[int, int], int] = {}
    for position, pair in enumerate(out):
        if pair in first_at:  # results come one per pair: a silent merge would misalign them with the list
            raise ValueError(f"pair {pair} is listed twice (positions {first_at[pair]} and {position})")
        first_at[pair] = position
    return out


def all_pairs(
    reps: Sequence[RepresentationSource],
    measures: Sequence[str],
    pairs: Literal["all"] | Iterable[tuple[int, int]] = "all",
    device: str | torch.device = "auto",
    chunk_rows: int = 8192,
    progress: bool = True,
    *,
    precision: PrecisionChoice = "auto",
    svcca: SvccaOptions | None = None,
    neuron_matches_too: bool = False,
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT,
    workers: int | None = None,
) -> list[PairResult]:
    """Every requested linear measure for every requested pair, from one streaming pass per tile.

    Each representation is fitted once (`LinearFit`) and each pair pays only for its cross terms. Memory does
    not depend on the number of rows: the blocks held (8 d_a d_b bytes each, within `memory_limit_bytes`)
    plus one stacked chunk.

    Parameters
    ----------
    reps
        The representations (e.g. ``RepresentationSource.from_store(entry, layer)`` for each layer of each
        model), all holding the same rows in the same chunks.
    measures
        Names from `reprsim.engine.ENGINE_MEASURES`.
    pairs
        ``"all"`` (every a < b; directed measures carry both directions) or (a, b) index pairs (a == b
        allowed; each pair at most once, (b, a) being another pair).
    device
        ``"auto"`` (CUDA if available, else the CPU), ``"cpu"``, ``"cuda"`` or a `torch.device`.
    chunk_rows
        Rows per chunk (memory: about chunk_rows x sum(widths) x 8 bytes for the stacked chunk).
    progress
        Show progress bars over the passes and the pairs.
    precision
        ``"auto"`` (float32 GEMMs when every measure keeps float64's values to float32 rounding whatever the
        data's conditioning, float64 otherwise: `reprsim.engine.linear_fit.pass_precision`), ``"float64"``, or
        ``"float32"`` GEMMs added into float64 accumulators.
    svcca
        SVCCA's options (default: keep 0.99, Raghu's rule).
    neuron_matches_too
        Also return each pair's per-neuron maxsim matches (`PairResult.neurons`).
    memory_limit_bytes
        Bytes of blocks (the covariances and cross-products, 8 d_a d_b each) held at once before the pairs are
        split into tiles (each tile streams the rows again); default 4 GiB.
    workers
        Parallel pair derivations on the CPU (default: torch's thread count).

    Returns
    -------
    list of PairResult
        One per pair, in the order of `pairs`.

    Raises
    ------
    ValueError
        If there are no representations or one is not a `RepresentationSource` of positive width, a measure
        is unknown, `precision`, `device`, `chunk_rows` or `memory_limit_bytes` is invalid, a pair is
        malformed, out of range or listed twice, the sources do not hold the same rows (naming both), a
        chunk holds non-finite values (naming the representation and row), or a measure is undefined for
        a pair (naming the pair).

    Warns
    -----
    ConstantNeuronWarning
        Once, listing the representations with constant neurons (excluded from neuron-level and CCA-type
        scores).
    FewRowsWarning
        When a CCA-type measure runs on fewer than 10 x the widest representation's width in rows.
    """
    sources = check_sources(reps)
    names = check_measures(measures)
    precision = check_precision_choice(precision)
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    if isinstance(memory_limit_bytes, bool) or not isinstance(memory_limit_bytes, int) or memory_limit_bytes < 1:
        raise ValueError(f"memory_limit_bytes must be a positive integer, got {memory_limit_bytes!r}")
    family = LinearFamily(
        sources,
        names,
        device=resolve_device(device),
        precision=precision,
        svcca=svcca if svcca is not None else SvccaOptions(),
        chunk_rows=chunk_rows,
        neuron_matches_too=neuron_matches_too,
        workers=workers if workers is not None else torch.get_num_threads(),
        progress=progress,
    )
    wanted = _check_pair_list(pairs, len(sources))
    return _results(family, wanted, memory_limit_bytes, names, progress)


def _results(family: LinearFamily, wanted: Sequence[tuple[int, int]], budget: int, names: Sequence[str],
             progress: bool) -> list[PairResult]:
    """Score the pairs with the scheduler and return them as PairResults in the order asked for."""
    results: dict[tuple[int, int], PairResult] = {}
    n_rows = None
    for a, b, values in score_pairs(family, wanted, budget, progress=progress):
        scores = dict(values)
        neurons = scores.pop("neurons", None)
        n_rows = family.fits[a].n
        results[(a, b)] = PairResult(a, b, family.ids[a], family.ids[b], n_rows, scores, neurons)
    warn_about_fits(family.fits, family.ids, names)
    return [results[p] for p in wanted]


def pair_results(
    moments: CrossMoments,
    measures: Sequence[str],
    pairs: Literal["all"] | Iterable[tuple[int, int]] = "all",
    ids: Sequence[Hashable] | None = None,
    *,
    svcca: SvccaOptions | None = None,
    neuron_matches_too: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> list[PairResult]:
    """The measures of pairs of representations from moments you accumulated (or merged) yourself.

    For `CrossMoments` streamed by hand, merged from shards (`CrossMoments.merge`), or grown with
    `CrossMoments.with_representations`. The moments' staging buffers are released first, to keep the peak
    memory low.

    Parameters
    ----------
    moments
        The accumulated moments: every representation in a pair needs its diagonal block, every pair its
        cross block (and ``row_norms=True`` for ``debiased_cka``).
    measures
        Names from `reprsim.engine.ENGINE_MEASURES`.
    pairs
        ``"all"`` (every a < b) or (a, b) index pairs, as in `all_pairs`.
    ids
        Labels of the representations in the results (default: their indices).
    svcca
        SVCCA's options (default: keep 0.99, Raghu's rule).
    neuron_matches_too
        Also return each pair's per-neuron maxsim matches.
    workers
        Parallel pair derivations on the CPU (default: torch's thread count).
    progress
        Show a progress bar over the pairs.

    Returns
    -------
    list of PairResult
        One per pair, in the order of `pairs`.

    Raises
    ------
    ValueError
        If a measure is unknown, the number of ids is not the number of representations, a pair is
        malformed, out of range or listed twice, a pair needs a block that was not accumulated (naming the
        pair and the block), or a measure is undefined for a pair.

    Warns
    -----
    ConstantNeuronWarning
        As in `all_pairs`.
    FewRowsWarning
        As in `all_pairs`.
    """
    names = check_measures(measures)
    labels: list[Hashable] = list(range(moments.n_reps)) if ids is None else list(ids)
    if len(labels) != moments.n_reps:
        raise ValueError(f"got {len(labels)} ids for {moments.n_reps} representations")
    wanted = _check_pair_list(pairs, moments.n_reps)
    for a, b in wanted:
        for block in ((a, a), (b, b), (a, b)):
            if not moments.has_block(*block):
                raise ValueError(f"pair ({labels[a]!r}, {labels[b]!r}) needs block {block}, which was not accumulated")
    moments.release_buffers()  # the chunk staging buffers are not needed to derive; free them for the fits
    family = MomentsFamily(
        moments,
        labels,
        names,
        svcca=svcca if svcca is not None else SvccaOptions(),
        neuron_matches_too=neuron_matches_too,
        workers=workers if workers is not None else torch.get_num_threads(),
    )
    return _results(family, wanted, _NO_LIMIT, names, progress)
