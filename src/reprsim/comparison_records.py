"""The three passes of an all-pairs comparison, each giving results-table records for the pairs not done yet.

- `streamed_records`: streamable representation measures (linear CKA, maxsim, linreg, the CCA family,
  Procrustes, debiased CKA) from the engine's streaming pass of cross-products, memory independent of the
  corpus (`LINEAR_BUDGET_BYTES` of blocks per pass);
- `subsampled_records`: measures that build n x n matrices (RBF CKA, RSA, mutual k-NN) on one seeded row
  subsample shared by every representation (`subsample_rows`; `PROFILE_BUDGET_BYTES` of fits at once);
- `attention_records`: attention measures from per-layer fits of the stored word-level maps of a sentence
  subsample (`ATTENTION_FIT_BUDGET_BYTES` of fits at once).

Each drives its measure family (`reprsim.engine.PairFamily`) through the one scheduler
(`reprsim.engine.score_pairs`) over the pairs that `done` (`done_keys` of an earlier table) does not hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from reprsim import measures as registry
from reprsim.engine import (
    AttentionFamily,
    Directed,
    LinearFamily,
    PairFamily,
    RepresentationSource,
    SampleFamily,
    SvccaOptions,
    plan_tiles,
    resolve_device,
    score_pairs,
)
from reprsim.engine.checks import PrecisionChoice
from reprsim.engine.fold_family import FoldFamily
from reprsim.engine.linear_family import pass_bytes, warn_about_fits
from reprsim.engine.linear_score import check_measures
from reprsim.engine.scheduler import Tile, tile_blocks
from reprsim.inference import NO_INFERENCE, InferenceOptions, Uncertainty, sentence_blocks
from reprsim.layers import LayerId
from reprsim.measures.sample_fit import GRAM_SPACE_MEASURES, sample_fit_bytes
from reprsim.results import DIRECTED, SYMMETRIC, ResultTable
from reprsim.store import StoreEntry

from .comparison_entries import attention_layers


def _ordered_pairs(n: int, symmetric: bool) -> list[tuple[int, int]]:
    """Index pairs to compute: i <= j for symmetric measures, every (i, j) for directed ones."""
    return [(i, j) for i in range(n) for j in range(n) if not symmetric or i <= j]


def _record(a: LayerId, b: LayerId, measure: str, value: float, level: str, n_rows: int,
            subsample: bool, uncertainty: Uncertainty | None = None) -> dict[str, Any]:
    """One results-table row (with its statistics and their replicates when there are any)."""
    info = registry.get(measure)
    record = {
        "model_a": a.model, "layer_a": a.layer, "model_b": b.model, "layer_b": b.layer,
        "measure": measure, "direction": SYMMETRIC if info.symmetric else DIRECTED,
        "value": float(value), "level": level, "n_rows": n_rows, "subsample": subsample,
    }
    if uncertainty is not None:
        record.update(uncertainty.columns())
        record.update(replicates=uncertainty.replicates, replicate_kind=uncertainty.replicate_kind,
                      null_values=uncertainty.null_values, ci_method=uncertainty.ci_method,
                      null_method=uncertainty.null_method)
    return record


def done_keys(previous: ResultTable | None) -> set[tuple[str, int, str, int, str]]:
    """The rows an earlier table already holds, in the form the passes' ``done`` takes.

    Parameters
    ----------
    previous
        The earlier table, or ``None``.

    Returns
    -------
    set of tuple
        (model_a, layer_a, model_b, layer_b, measure) of every row (empty without a table).
    """
    if previous is None:
        return set()
    f = previous.frame
    return set(zip(f.model_a, f.layer_a, f.model_b, f.layer_b, f.measure, strict=True))


def _todo(reps: Sequence[Any], measure: str, done: set[tuple[str, int, str, int, str]]) -> list[tuple[int, int]]:
    """The index pairs of one measure that are not computed yet."""
    info = registry.get(measure)
    ids: list[LayerId] = [r.id for r in reps]

    def computed(a: LayerId, b: LayerId) -> bool:
        # A symmetric pair counts as done in either order: an earlier run may have listed the models
        # in another order (--models, a study's list, or the store's).
        return (a.model, a.layer, b.model, b.layer, measure) in done or (
            info.symmetric and (b.model, b.layer, a.model, a.layer, measure) in done
        )

    return [(i, j) for i, j in _ordered_pairs(len(reps), info.symmetric) if not computed(ids[i], ids[j])]


def _family_records(family: PairFamily, ids: Sequence[LayerId], todo: dict[str, list[tuple[int, int]]],
                    budget: int, level: str, n_rows: int, subsample: bool, progress: bool,
                    description: str, unordered: bool = False) -> list[dict[str, Any]]:
    """Run one family through the scheduler over the pairs some measure still needs, as table records.

    With `unordered`, each pair is scored once as (min, max) and a directed value (`Directed`) gives both
    orders' records; only the records that `todo` asks for are kept.
    """
    wanted = {m: set(pairs) for m, pairs in todo.items()}
    pairs = sorted({(min(p), max(p)) if unordered else p for ps in todo.values() for p in ps})
    if not pairs:
        return []
    scored = {(i, j): values for i, j, values in score_pairs(family, pairs, budget, progress=progress,
                                                            description=description)}
    records = []
    for i, j in pairs:  # in pair order, whatever the tiling
        values = dict(scored[i, j])
        stats = values.pop("uncertainty", {})
        for m, value in values.items():
            u = stats.get(m)
            directions: list[tuple[int, int, float, Uncertainty | None]]
            if isinstance(value, Directed):
                ua, ub = (u.a_to_b, u.b_to_a) if isinstance(u, Directed) else (u, u)
                directions = [(i, j, value.a_to_b, ua), (j, i, value.b_to_a, ub)][: 1 if i == j else 2]
            else:
                directions = [(i, j, value, u)]
            for a, b, v, uv in directions:
                if (a, b) in wanted.get(m, ()):
                    records.append(_record(ids[a], ids[b], m, float(v), level, n_rows, subsample, uv))
    return records


def block_bounds(sentence_lengths: Sequence[int], options: InferenceOptions) -> np.ndarray | None:
    """The sentence blocks' row bounds when intervals are asked for (``None`` otherwise).

    Raises
    ------
    ValueError
        If the corpus has fewer sentences than ``options.blocks`` (naming the option).
    """
    if options.ci == "none":
        return None
    try:
        return sentence_blocks(sentence_lengths, options.blocks)
    except ValueError as exc:
        raise ValueError(f"--blocks / blocks: {exc}") from exc


# --- linear measures: one streaming pass of cross-products ----------------------------------------------
LINEAR_BUDGET_BYTES = 4 << 30  # cross-product blocks held per pass; beyond it, the rows are streamed per tile


def streamed_records(reps: Sequence[RepresentationSource], names: Sequence[str],
                     done: set[tuple[str, int, str, int, str]], device: str, chunk_rows: int,
                     progress: bool, inference: InferenceOptions = NO_INFERENCE,
                     bounds: np.ndarray | None = None, family: Callable[..., LinearFamily] = LinearFamily,
                     budget: int = LINEAR_BUDGET_BYTES, precision: PrecisionChoice = "auto") -> list[dict[str, Any]]:
    """Linear measures from the engine's streaming pass over every needed pair (i <= j).

    Every layer is fitted once; when the blocks exceed `LINEAR_BUDGET_BYTES` the rows are streamed once
    per tile.

    Parameters
    ----------
    reps
        Every stored layer, as sources named by `LayerId`.
    names
        Measures from `reprsim.engine.ENGINE_MEASURES`.
    done
        (model_a, layer_a, model_b, layer_b, measure) of the rows already computed; a symmetric pair counts
        as done in either order.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    chunk_rows
        Rows per chunk of a pass.
    progress
        Show progress bars.
    inference
        The statistics to attach (`reprsim.engine.linear_inference`).
    bounds
        The sentence blocks' row bounds (`block_bounds`), when intervals are asked for.
    family
        Makes the linear family from (reps, measures, **options): `LinearFamily`, or the Ray backend's
        (`reprsim.ray_compare.RayLinearFamily` with its own options bound).
    budget
        Bytes of blocks per tile (per pass over the rows).
    precision
        The passes' precision (`reprsim.engine.linear_fit.pass_precision`): ``"auto"`` for a pass over the
        rows, ``"float64"`` for the families whose moments come from float64 row shards.

    Returns
    -------
    list of dict
        Results-table records (level ``"representation"``, ``subsample`` False): one per symmetric pair,
        both orders of a directed measure.

    Warns
    -----
    ConstantNeuronWarning, FewRowsWarning
        As `reprsim.engine.all_pairs`.
    """
    if not names:
        return []
    made = family(reps, check_measures(names), device=resolve_device(device), precision=precision,
                  svcca=SvccaOptions(), chunk_rows=chunk_rows, workers=torch.get_num_threads(), progress=progress,
                  inference=inference, bounds=bounds)
    return _linear_records(made, reps, names, done, budget, int(reps[0].n_rows or 0), progress)


def linear_tiles(reps: Sequence[RepresentationSource], names: Sequence[str], pairs: Sequence[tuple[int, int]],
                 budget: int, inference: InferenceOptions = NO_INFERENCE) -> list[Tile]:
    """The column tiles the linear family cuts these pairs into under the budget (what `streamed_records` runs).

    Parameters
    ----------
    reps, names
        As for `streamed_records`.
    pairs
        The (a, b) pairs, a <= b.
    budget
        Bytes of blocks per tile.
    inference
        The statistics: intervals keep G + 2 copies of the blocks, which the tiles count.

    Returns
    -------
    list of Tile
        The tiles, in plan order (none without pairs).
    """
    if not pairs:
        return []
    family = LinearFamily(reps, check_measures(names), device=torch.device("cpu"), precision="float64",
                          svcca=SvccaOptions(), chunk_rows=2, inference=inference,
                          bounds=np.zeros(2, dtype=np.int64) if inference.ci != "none" else None)
    return plan_tiles(pairs, family.fit_bytes, family.pair_bytes, budget)


def linear_plan(reps: Sequence[RepresentationSource], names: Sequence[str],
                done: set[tuple[str, int, str, int, str]], budget: int = LINEAR_BUDGET_BYTES,
                shards: int = 1, chunk_rows: int = 8192, inference: InferenceOptions = NO_INFERENCE,
                copies: int = 1) -> dict[str, int]:
    """How the linear measures' pass would run, without running it.

    Parameters
    ----------
    reps, names, done
        As for `streamed_records`.
    budget
        Bytes of blocks per tile.
    shards
        Row shards per tile (1 for the local backend).
    chunk_rows
        Rows per chunk of a pass.
    inference
        The statistics: intervals keep G + 2 copies of the blocks, which the tiling counts.
    copies
        Copies of a tile's blocks one pass (or task) holds: 1, the statistics' G + 2, or a shard's blocks.

    Returns
    -------
    dict
        ``pairs`` to score, ``tiles`` (= passes over the rows), ``tasks`` (one per row shard and tile, plus
        the merges of the shards' results without intervals), ``bytes_per_task`` (`pass_bytes` of the
        largest tile) and ``rows``.
    """
    if not names:
        return {"pairs": 0, "tiles": 0, "tasks": 0, "bytes_per_task": 0, "rows": int(reps[0].n_rows or 0)}
    pairs = sorted({(min(p), max(p)) for m in names for p in _todo(reps, m, done)})
    tiles = linear_tiles(reps, names, pairs, budget, inference)

    # What a pass over a tile holds, every member's own block counted.
    largest = max((pass_bytes([reps[g].width for g in t.members], tile_blocks(t), chunk_rows, copies) for t in tiles),
                  default=0)
    per_tile = 1 if shards == 1 else shards if inference.ci != "none" else 2 * shards - 1
    return {"pairs": len(pairs), "tiles": len(tiles), "tasks": len(tiles) * per_tile, "bytes_per_task": largest,
            "rows": int(reps[0].n_rows or 0)}


def _linear_records(family: LinearFamily, reps: Sequence[RepresentationSource], names: Sequence[str],
                    done: set[tuple[str, int, str, int, str]], budget: int, n_rows: int,
                    progress: bool) -> list[dict[str, Any]]:
    """The linear family's records for the pairs not done, with the study-wide warnings about the fits."""
    ids: list[LayerId] = [r.id for r in reps]  # type: ignore[misc]
    records = _family_records(family, ids, {m: _todo(reps, m, done) for m in names}, budget,
                              "representation", n_rows, False, progress, "pairs", unordered=True)
    warn_about_fits(family.fits, ids, names)
    return records


# --- cross-validated measures: one pass keeping the moments per fold --------------------------------------
def folded_records(reps: Sequence[RepresentationSource], names: Sequence[str],
                   done: set[tuple[str, int, str, int, str]], device: str, chunk_rows: int, progress: bool,
                   sentence_lengths: Sequence[int], budget: int = LINEAR_BUDGET_BYTES) -> list[dict[str, Any]]:
    """Cross-validated linear predictivity (`reprsim.engine.FoldFamily`) of every pair, both directions.

    Parameters
    ----------
    reps, names, done, device, chunk_rows, progress
        As for `streamed_records`; `names` are `linear_predictivity` specs.
    sentence_lengths
        Rows per sentence, which the folds keep whole.
    budget
        Bytes of blocks per pass (k + 1 copies each).

    Returns
    -------
    list of dict
        Results-table records (level ``"representation"``, every row of the corpus).
    """
    ids: list[LayerId] = [r.id for r in reps]  # type: ignore[misc]
    records = []
    for m in names:
        family = FoldFamily(reps, m, sentence_lengths, device=resolve_device(device), chunk_rows=chunk_rows,
                            progress=progress)
        records += _family_records(family, ids, {m: _todo(reps, m, done)}, budget, "representation",
                                   int(reps[0].n_rows or 0), False, progress, f"{m} pairs", unordered=True)
    return records


# --- n x n measures: a shared row subsample ------------------------------------------------------------
def subsample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded subsample, shared by every representation.

    Parameters
    ----------
    n
        The number of rows to choose from.
    size
        How many to choose.
    seed
        The random generator's seed.

    Returns
    -------
    numpy.ndarray
        ``size`` sorted indices drawn without replacement, or every index when ``n <= size``.
    """
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


PROFILE_BUDGET_BYTES = 2 << 30  # n x n fits held at once; beyond it, representations are fitted in tiles
SPACES = ("auto", "feature", "gram")


def space_costs(n: int, widths: Sequence[int], gram_measures: int) -> tuple[float, float]:
    """Multiply-adds of the CKA measures' two routes over every pair of the representations.

    Feature space is the streaming pass: ``n d_a d_b`` for each block a <= b, shared by every linear
    measure. Gram space fits each representation's n x n Gram matrix (``n^2 d_a``) once per measure and
    tile of fits (`PROFILE_BUDGET_BYTES` holds the fits; beyond it representations are refitted, about
    (G + 1) / 2 times for G groups) and scores each pair from two packed fits (``n^2 / 2``).

    Parameters
    ----------
    n
        Rows (words, or texts for pooled rows).
    widths
        The representations' widths.
    gram_measures
        How many measures would each fit their own Gram matrices (linear and debiased CKA: 1 or 2).

    Returns
    -------
    tuple of (float, float)
        (feature space, Gram space) multiply-adds; Gram space is infinite when one fit takes more than a
        quarter of the fits' budget.
    """
    total = float(sum(widths))
    feature = n * (total * total + sum(float(w) * w for w in widths)) / 2
    fit_bytes, count = sample_fit_bytes("linear_cka", n), len(widths)
    if count * fit_bytes <= PROFILE_BUDGET_BYTES:
        refits = 1.0
    elif fit_bytes <= PROFILE_BUDGET_BYTES / 4:
        groups = -(-count // int(PROFILE_BUDGET_BYTES / 4 // fit_bytes))
        refits = (groups + 1) / 2
    else:
        return feature, float("inf")
    gram = gram_measures * (refits * float(n) * n * total + count * (count + 1) / 2 * n * (n + 1) / 2)
    return feature, gram


def gram_space_measures(names: Sequence[str], space: str, n: int, widths: Sequence[int],
                        inference: InferenceOptions) -> list[str]:
    """Which of the streamed measures go through n x n Gram matrices instead of the pass (`space_costs`).

    Only linear and debiased CKA have a Gram-space route, and only without statistics (their intervals
    resample the pass's sentence blocks); ``"auto"`` takes it when every streamed measure has one and it
    costs fewer multiply-adds, ``"gram"`` takes it for linear and debiased CKA whatever the cost.

    Parameters
    ----------
    names
        The streamed measures (registry names).
    space
        ``"auto"``, ``"feature"`` or ``"gram"``.
    n, widths
        Rows and the representations' widths.
    inference
        The statistics asked for.

    Returns
    -------
    list of str
        The measures to fit in Gram space (a sublist of `names`).

    Raises
    ------
    ValueError
        For an unknown `space`, or ``"gram"`` with statistics or with no measure it applies to.
    """
    if space not in SPACES:
        raise ValueError(f"space must be one of {', '.join(SPACES)}, got {space!r}")
    capable = gram_capable(names)
    if space == "gram":
        if inference.enabled:
            raise ValueError("space='gram' (--space gram) computes no intervals or nulls; their sentence blocks "
                             "come from the feature-space pass: use space='feature' or 'auto' with statistics")
        if not capable:
            raise ValueError(f"space='gram' (--space gram) applies to linear_cka and debiased_cka only; none of "
                             f"{', '.join(names) or 'the measures'} has a Gram-space route")
        fit_bytes = sample_fit_bytes("linear_cka", n)
        if fit_bytes > PROFILE_BUDGET_BYTES / 4:
            raise ValueError(f"space='gram' (--space gram): one layer's packed Gram matrix on {n:,} rows takes "
                             f"{fit_bytes / 2**30:.1f} GiB, more than a quarter of the "
                             f"{PROFILE_BUDGET_BYTES / 2**30:.0f} GiB the fits may hold; use space='feature' "
                             "(the pass) or 'auto'")
        return capable
    if space == "feature" or inference.enabled or not names or len(capable) < len(names):
        return []
    feature, gram = space_costs(n, widths, len(capable))
    return capable if gram < feature else []


def gram_capable(names: Sequence[str]) -> list[str]:
    """The measures among `names` with a Gram-space route: linear and debiased CKA, without options."""
    return [m for m in names if registry.get(m).base in GRAM_SPACE_MEASURES and not registry.get(m).options]



def subsampled_records(reps: Sequence[RepresentationSource], names: Sequence[str],
                       done: set[tuple[str, int, str, int, str]], size: int, seed: int, chunk_rows: int,
                       progress: bool, inference: InferenceOptions = NO_INFERENCE,
                       sentence_lengths: Sequence[int] | None = None,
                       family: Callable[..., PairFamily] = SampleFamily,
                       graphs: dict[tuple[int, Any], Any] | None = None) -> list[dict[str, Any]]:
    """N x n measures on one shared row subsample, every pair scored from per-representation fits.

    Each representation is fitted once per measure (once per tile of representations when the fits exceed
    `PROFILE_BUDGET_BYTES`).

    Parameters
    ----------
    reps
        Every stored layer, as sources named by `LayerId`.
    names
        Registry names of n x n measures (RBF CKA, RSA, mutual k-NN, ...).
    done
        (model_a, layer_a, model_b, layer_b, measure) of the rows already computed; a symmetric pair counts
        as done in either order.
    size
        Rows in the subsample (all rows when the corpus has no more).
    seed
        The subsample's seed.
    chunk_rows
        Rows per chunk read.
    progress
        Show progress bars.
    inference
        The statistics to attach (`reprsim.engine.sample_family`): resampling the subsample's sentences.
    sentence_lengths
        Rows per sentence of the corpus, needed when `inference` is enabled.
    family
        Makes each measure's family from (reps, measure, rows, chunk_rows, **options): `SampleFamily`, or
        the Ray backend's (`reprsim.ray_pairs`).
    graphs
        The k-NN graphs built so far on these rows, shared by the neighbourhood measures (see
        `SampleFamily`); pass one dict to every call of a comparison on the same subsample.

    Returns
    -------
    list of dict
        Results-table records (level ``"representation"``, ``n_rows`` the subsample's size, ``subsample``
        True when it is smaller than the corpus).
    """
    if not reps:
        return []
    n_words = int(reps[0].n_rows or 0)
    rows = subsample_rows(n_words, size, seed)
    ids: list[LayerId] = [r.id for r in reps]  # type: ignore[misc]
    sentence_of_row = None
    if inference.enabled:
        assert sentence_lengths is not None, "statistics need the sentence lengths"
        sentence_of_row = np.repeat(np.arange(len(sentence_lengths)), sentence_lengths)[rows]
    records = []
    if graphs is None:
        graphs = {}
    for m in names:
        extra: dict[str, Any] = {}
        if inference.enabled:
            extra = {"inference": inference, "sentence_of_row": sentence_of_row}
        elif family is SampleFamily:
            extra = {"graphs": graphs}
        made = family(reps, m, rows, chunk_rows, **extra)
        records += _family_records(made, ids, {m: _todo(reps, m, done)}, PROFILE_BUDGET_BYTES, "representation",
                                   len(rows), len(rows) < n_words, progress, f"{m} pairs")
    return records


# --- attention measures ----------------------------------------------------------------------------------
ATTENTION_FIT_BUDGET_BYTES = 2 << 30  # attention fits held at once; beyond it, layers are fitted in tiles


def attention_records(entries: Sequence[StoreEntry], names: Sequence[str],
                      done: set[tuple[str, int, str, int, str]], max_sentences: int, seed: int,
                      progress: bool, inference: InferenceOptions = NO_INFERENCE,
                      family: Callable[..., PairFamily] = AttentionFamily) -> list[dict[str, Any]]:
    """Attention measures on a shared sentence subsample, every pair of layers scored from per-layer fits.

    Each layer is fitted once per measure (once per tile of layers when the fits exceed
    `ATTENTION_FIT_BUDGET_BYTES`). Only entries extracted with attention, and their layers with heads, take
    part.

    Parameters
    ----------
    entries
        The store entries compared.
    names
        Registry names of attention measures.
    done
        (model_a, layer_a, model_b, layer_b, measure) of the rows already computed; a symmetric pair counts
        as done in either order.
    max_sentences
        Sentences in the subsample (all when the corpus has no more).
    seed
        The subsample's seed.
    progress
        Show progress bars.
    inference
        The statistics to attach (`reprsim.engine.attention_family`): resampling the subsample's sentences.
    family
        Makes each measure's family from (layers, measure, sentences, lengths, inference):
        `AttentionFamily`, or the Ray backend's (`reprsim.ray_pairs`).

    Returns
    -------
    list of dict
        Results-table records (level ``"attention"``, ``n_rows`` the subsample's words, ``subsample`` True
        when it is smaller than the corpus); empty when no layer has attention.
    """
    layers = attention_layers(entries)
    if not layers or not names:
        return []
    n_sentences = entries[0].n_sentences
    sentences = subsample_rows(n_sentences, max_sentences, seed)
    lengths = [int(t) for t in np.asarray(entries[0].sentence_lengths)[sentences]]
    ids: list[LayerId] = [a.id for a in layers]  # type: ignore[misc]
    records = []
    for m in names:
        made = family(layers, m, sentences, lengths, inference)
        records += _family_records(made, ids, {m: _todo(layers, m, done)}, ATTENTION_FIT_BUDGET_BYTES,
                                   "attention", sum(lengths), len(sentences) < n_sentences, progress, f"{m} pairs")
    return records


