"""Section 1: whether a measure finds the corresponding layer of a network trained from another seed.

Kornblith et al. 2019 (Table 2): networks of one architecture that differ only in their random seed should
have corresponding layers at the same depth. For each layer of each network and each other network, the most
similar layer (argmax of S + S^T for directed measures, argmin for distances) should be the one at the same
depth; accuracy is the fraction of (layer, network, other network) triples where it is. Chance is 1/L.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import combinations, permutations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from reprsim.analysis import best_match
from reprsim.results import ResultTable
from reprsim.validation.specs import KORNBLITH_TABLE2, MeasureSpec, counting_warnings
from reprsim.validation.train_common import TrainedNetwork


def model_name(network: TrainedNetwork) -> str:
    """Name a trained network as it appears in results tables, e.g. ``"digits-mlp seed 3"``.

    Parameters
    ----------
    network : TrainedNetwork
        The network.

    Returns
    -------
    str
        ``"<setting> seed <seed>"``.
    """
    return f"{network.setting} seed {network.seed}"


def _check_same_setting(networks: Sequence[TrainedNetwork]) -> None:
    """Check that networks share setting, layer ids and row count (row-aligned inputs), with distinct seeds."""
    if len(networks) < 2:
        raise ValueError(f"need at least 2 networks to compare seeds, got {len(networks)}")
    first = networks[0]
    for net in networks[1:]:
        if net.setting != first.setting or net.layer_ids != first.layer_ids:
            raise ValueError(
                f"{model_name(net)} has setting/layers {net.setting}/{net.layer_ids}, expected "
                f"{first.setting}/{first.layer_ids}"
            )
        rows = {layer.shape[0] for layer in net.layers} | {first.layers[0].shape[0]}
        if len(rows) != 1:
            raise ValueError(f"{model_name(net)}: layers have {sorted(rows)} rows; all must share the held-out rows")
    if len({n.seed for n in networks}) != len(networks):
        raise ValueError(f"seeds must differ, got {[n.seed for n in networks]}")


def cross_seed_table(
    networks: Sequence[TrainedNetwork],
    specs: Sequence[MeasureSpec],
    warning_counts: dict[str, Counter[str]] | None = None,
    progress: bool = True,
) -> ResultTable:
    """Evaluate every measure between every layer of every pair of networks, as a results table.

    Symmetric measures are evaluated once per layer pair (direction ``"sym"``), directed ones in both
    orders (``"a->b"``); the measure column holds the spec label (e.g. ``"rbf_cka (t=0.4)"``) and the model
    columns the networks' `model_name`.

    Parameters
    ----------
    networks : sequence of TrainedNetwork
        At least two networks of one setting, with the same layers and held-out rows and distinct seeds.
    specs : sequence of MeasureSpec
        The measures.
    warning_counts : dict of str to Counter, optional
        When given, the warnings each measure raised are counted into ``warning_counts[label]`` (by warning
        class name) instead of being printed.
    progress : bool, default True
        Show a progress bar.

    Returns
    -------
    ResultTable
        One row per (measure, layer pair, direction), with provenance ``{"setting": ...}``.

    Raises
    ------
    ValueError
        If fewer than two networks are given, they differ in setting, layers or row count, their seeds
        repeat, or a measure returns a non-finite value.
    """
    _check_same_setting(networks)
    pairs = list(combinations(networks, 2))
    n_layers = len(networks[0].layers)
    n_rows = networks[0].layers[0].shape[0]
    total = sum(n_layers * n_layers * (1 if s.symmetric else 2) for s in specs) * len(pairs)
    records: list[dict[str, object]] = []
    with tqdm(total=total, desc=f"{networks[0].setting}: seeds x layers x measures", disable=not progress) as bar:
        for spec in specs:
            used_rows = min(n_rows, spec.options.get("max_rows") or n_rows)
            common = {
                "measure": spec.label,
                "level": "representation",
                "n_rows": used_rows,
                "subsample": used_rows < n_rows,
            }
            counts: Counter[str] = Counter()
            with counting_warnings(counts):
                for net_a, net_b in pairs:
                    for (i, x), (j, y) in _layer_pairs(net_a, net_b):
                        a, b = model_name(net_a), model_name(net_b)
                        if spec.symmetric:
                            records.append(
                                {
                                    **common,
                                    "model_a": a,
                                    "layer_a": i,
                                    "model_b": b,
                                    "layer_b": j,
                                    "direction": "sym",
                                    "value": spec(x, y),
                                }
                            )
                        else:
                            records.append(
                                {
                                    **common,
                                    "model_a": a,
                                    "layer_a": i,
                                    "model_b": b,
                                    "layer_b": j,
                                    "direction": "a->b",
                                    "value": spec(x, y),
                                }
                            )
                            records.append(
                                {
                                    **common,
                                    "model_a": b,
                                    "layer_a": j,
                                    "model_b": a,
                                    "layer_b": i,
                                    "direction": "a->b",
                                    "value": spec(y, x),
                                }
                            )
                        bar.update(1 if spec.symmetric else 2)
            if warning_counts is not None:
                warning_counts.setdefault(spec.label, Counter()).update(counts)
    return ResultTable.from_records(records, provenance={"setting": networks[0].setting})


def _layer_pairs(
    net_a: TrainedNetwork, net_b: TrainedNetwork
) -> list[tuple[tuple[int, np.ndarray], tuple[int, np.ndarray]]]:
    """List all (layer of a, layer of b) combinations as ((id, activations), (id, activations))."""
    layers_a = list(zip(net_a.layer_ids, net_a.layers, strict=True))
    layers_b = list(zip(net_b.layer_ids, net_b.layers, strict=True))
    return [(a, b) for a in layers_a for b in layers_b]


def best_match_is_same_depth(scores: np.ndarray, larger_is_similar: bool) -> tuple[np.ndarray, np.ndarray]:
    """Find each row's best column, and whether column i is strictly the best for row i.

    A tie is not a hit. Strictness matters for saturated measures: a measure that gives 1.0 to every layer
    pair must not be credited with the first layer by argmax's tie-breaking.

    Parameters
    ----------
    scores : numpy.ndarray
        A square ``(L, L)`` score matrix, rows the layers of one network and columns those of the other.
    larger_is_similar : bool
        True to take the maximum (similarities), False for the minimum (distances).

    Returns
    -------
    best : numpy.ndarray
        The best column of each row (the first on ties), shape ``(L,)``.
    hit : numpy.ndarray
        Boolean, shape ``(L,)``: whether the diagonal entry is strictly better than every other in its row.

    Raises
    ------
    ValueError
        If `scores` is not square.
    """
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"layer-identification scores must be square, got shape {scores.shape}")
    _, best = best_match(scores, larger_is_similar)
    oriented = scores if larger_is_similar else -scores
    others = np.where(np.eye(len(oriented), dtype=bool), -np.inf, oriented)
    hit = np.asarray((np.diag(oriented)[:, None] > others).all(axis=1))
    return np.asarray(best), hit


def _symmetrised_scores(table: ResultTable, measure: str, model_a: str, model_b: str) -> np.ndarray:
    """Compute Kornblith et al.'s S + S^T: M[i, j] = sim(a_i -> b_j) + sim(b_j -> a_i).

    For a symmetric measure this is twice the value, which changes no argmax; for a directed one it
    combines both directions so that neither side's notion of "explained" dominates.
    """
    return table.pair_matrix(measure, model_a, model_b) + table.pair_matrix(measure, model_b, model_a).T


def identification_hits(table: ResultTable, larger_is_similar: Mapping[str, bool], setting: str = "") -> pd.DataFrame:
    """Match each layer of each network to its most similar layer in each other network.

    Scores are Kornblith et al.'s S + S^T (both directions summed for directed measures). Every ordered
    pair of networks is visited, so each layer of each network is matched in each other network. A hit
    is a strict best match at the same depth (see `best_match_is_same_depth`).

    Parameters
    ----------
    table : ResultTable
        The output of `cross_seed_table`.
    larger_is_similar : mapping of str to bool
        Per measure (spec label), whether larger means more similar.
    setting : str, default ""
        The setting name written into the ``setting`` column.

    Returns
    -------
    pandas.DataFrame
        One row per (measure, network, other network, layer), with columns ``setting``, ``measure``,
        ``model``, ``other``, ``layer``, ``best_layer`` and ``hit``.

    Raises
    ------
    KeyError
        If a measure of the table has no entry in `larger_is_similar`, or a layer pair is missing.
    ValueError
        If two networks have different layers.
    """
    out: list[tuple[str, str, str, str, int, int, bool]] = []
    for measure in table.measures():
        if measure not in larger_is_similar:
            raise KeyError(f"no orientation (larger_is_similar) given for measure {measure!r}")
        for model_a, model_b in permutations(table.models(), 2):
            layers_a, layers_b = table.layers(model_a), table.layers(model_b)
            if layers_a != layers_b:
                raise ValueError(f"{model_a} has layers {layers_a}, {model_b} has {layers_b}; cannot match depths")
            scores = _symmetrised_scores(table, measure, model_a, model_b)
            best, hit = best_match_is_same_depth(scores, larger_is_similar[measure])
            out.extend(
                (setting, measure, model_a, model_b, layer, layers_b[b], bool(h))
                for layer, b, h in zip(layers_a, best, hit, strict=True)
            )
    return pd.DataFrame(out, columns=["setting", "measure", "model", "other", "layer", "best_layer", "hit"])


def identification_accuracy(hits: pd.DataFrame, measure_order: Sequence[str]) -> pd.DataFrame:
    """Compute layer-identification accuracy per setting and measure, beside chance and the paper's value.

    Parameters
    ----------
    hits : pandas.DataFrame
        The output of `identification_hits` (possibly for several settings).
    measure_order : sequence of str
        The spec labels, in the order of the output rows within each setting; labels without hits are
        skipped.

    Returns
    -------
    pandas.DataFrame
        Columns ``setting``, ``measure``, ``accuracy`` (percent of hits), ``n_trials``, ``chance``
        (100 / L, L the number of layers), ``paper_index`` and ``paper_accuracy`` (Kornblith et al. 2019,
        Table 2; empty and NaN where the paper has no such index).
    """
    rows = []
    for setting, part in hits.groupby("setting", sort=False):
        chance = 100.0 / part["layer"].nunique()
        by_measure = part.groupby("measure")["hit"]
        for label in measure_order:
            if label not in by_measure.groups:
                continue
            measure_hits = by_measure.get_group(label)
            paper = KORNBLITH_TABLE2.get(label)
            rows.append(
                {
                    "setting": setting,
                    "measure": label,
                    "accuracy": 100.0 * float(measure_hits.mean()),
                    "n_trials": len(measure_hits),
                    "chance": chance,
                    "paper_index": paper.index if paper else "",
                    "paper_accuracy": paper.accuracy if paper else np.nan,
                }
            )
    return pd.DataFrame(rows)


def same_layer_similarity(table: ResultTable, setting: str = "") -> pd.DataFrame:
    """Compute the noise floor of Ding et al.: each measure's value between the same layer of two seeds.

    Parameters
    ----------
    table : ResultTable
        The output of `cross_seed_table`.
    setting : str, default ""
        The setting name written into the ``setting`` column.

    Returns
    -------
    pandas.DataFrame
        One row per (measure, layer), with columns ``setting``, ``measure``, ``layer``, ``mean`` and ``std``
        (over network pairs; std with ddof=1, NaN for a single pair) and ``n`` (the number of network
        pairs). Directed measures are first averaged over both directions.

    Raises
    ------
    KeyError
        If a same-layer pair is missing from the table.
    """
    rows = []
    for measure in table.measures():
        for layer in table.layers(table.models()[0]):
            per_pair = [
                0.5 * (table.value(measure, (a, layer), (b, layer)) + table.value(measure, (b, layer), (a, layer)))
                for a, b in combinations(table.models(), 2)
            ]
            rows.append(
                {
                    "setting": setting,
                    "measure": measure,
                    "layer": layer,
                    "mean": float(np.mean(per_pair)),
                    "std": float(np.std(per_pair, ddof=1)) if len(per_pair) > 1 else float("nan"),
                    "n": len(per_pair),
                }
            )
    return pd.DataFrame(rows)
