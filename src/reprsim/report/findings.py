"""The report's opening: every measure's symmetric model-to-model value side by side, and what they show.

`cross_measure` computes the table (one row per measure, one column per model pair); `findings` words a few
careful observations from it. Both are pure functions of a `ResultTable`, so tests check them directly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from reprsim.analysis.aggregate import model_pairs
from reprsim.results import ResultTable

Pair = tuple[str, str]


def pair_label(pair: Pair) -> str:
    """Write a model pair for the page, e.g. ``"MiniLM – SmolLM2"``.

    Parameters
    ----------
    pair : tuple of str
        The two models.

    Returns
    -------
    str
        The two names joined by an en dash.
    """
    return f"{pair[0]} – {pair[1]}"


@dataclass(frozen=True)
class CrossMeasure:
    """Symmetric model-to-model values of every measure.

    Attributes
    ----------
    values : pandas.DataFrame
        Index: measures (table order); columns: model pairs (tuples, in model order); NaN where a measure does
        not cover both models.
    directed : dict of (str, (str, str)) to (float, float)
        (measure, pair) -> (sim(a -> b), sim(b -> a)).
    larger_is_similar : dict of str to bool
        Per measure, False for distances.
    levels : dict of str to str
        Per measure, its table level (``"representation"`` or ``"attention"``) or registry level when known.
    skipped : dict of str to str
        Measures without model-to-model values, with the reason.
    """

    values: pd.DataFrame
    directed: dict[tuple[str, Pair], tuple[float, float]] = field(default_factory=dict)
    larger_is_similar: dict[str, bool] = field(default_factory=dict)
    levels: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def pair_values(self, measure: str) -> dict[Pair, float]:
        """The finite values of one measure, by pair.

        Parameters
        ----------
        measure : str
            A measure of the table.

        Returns
        -------
        dict of (str, str) to float
            Pair -> symmetric value, pairs the measure does not cover left out.
        """
        if measure not in self.values.index:
            return {}
        row = self.values.loc[measure]
        return {pair: float(v) for pair, v in row.items() if np.isfinite(v)}


def registry_level(measure: str, fallback: str) -> str:
    """The registry level of a measure (neuron, mixed, distributed, attention), or `fallback` outside it.

    Parameters
    ----------
    measure : str
        The measure's name or spec.
    fallback : str
        What to return for a measure outside the registry.

    Returns
    -------
    str
        The level.
    """
    from reprsim import measures as registry  # imported late: the registry pulls in torch

    try:
        return str(registry.get(measure).level)
    except (KeyError, ValueError):
        return fallback


def cross_measure(table: ResultTable, orientation: Mapping[str, bool]) -> CrossMeasure:
    """Compute the symmetric model-to-model value of every model pair under every measure.

    Parameters
    ----------
    table : ResultTable
        The results table.
    orientation : mapping of str to bool
        Per measure, whether larger means more similar.

    Returns
    -------
    CrossMeasure
        The values (see `reprsim.analysis.aggregate.model_pairs`), with the measures that could not be
        aggregated (fewer than two models, a missing pair) in `skipped`.
    """
    models = table.models()
    pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]
    rows: dict[str, dict[Pair, float]] = {}
    directed: dict[tuple[str, Pair], tuple[float, float]] = {}
    skipped: dict[str, str] = {}
    for measure in table.measures():
        try:
            frame = model_pairs(table, measure, larger_is_similar=orientation[measure])
        except (KeyError, ValueError) as exc:
            skipped[measure] = str(exc.args[0]) if exc.args else str(exc)
            continue
        rows[measure] = {}
        for a, b, value, ab, ba in frame[["model_a", "model_b", "value", "a_to_b", "b_to_a"]].itertuples(
            index=False
        ):
            rows[measure][(a, b)] = float(value)
            directed[(measure, (a, b))] = (float(ab), float(ba))
    values = pd.DataFrame.from_dict(rows, orient="index")
    values = values.reindex(index=list(rows), columns=pd.Index(pairs, tupleize_cols=False))
    levels = {m: registry_level(m, table.level(m)) for m in table.measures()}
    return CrossMeasure(values.astype(float), directed, dict(orientation), levels, skipped)


def best_pair(values: Mapping[Pair, float], larger_is_similar: bool, closest: bool = True) -> Pair | None:
    """The most (or least) similar pair of one measure; ties go to the first in model order.

    Parameters
    ----------
    values : mapping of pair to float
        One measure's values.
    larger_is_similar : bool
        False for distances (the closest pair then has the smallest value).
    closest : bool, default True
        False to find the least similar pair.

    Returns
    -------
    tuple of str or None
        The pair, or None when there are fewer than two pairs (nothing to rank).
    """
    if len(values) < 2:
        return None
    sign = 1.0 if larger_is_similar == closest else -1.0
    return max(values, key=lambda pair: sign * values[pair])


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman correlation of two vectors (average ranks), NaN when either is constant."""
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def ranking_agreement(cross: CrossMeasure) -> tuple[float, dict[str, float]] | None:
    """How far measures agree on the order of the model pairs, from most to least similar.

    Distances are negated first so that every measure ranks the same way.

    Parameters
    ----------
    cross : CrossMeasure
        The cross-measure values.

    Returns
    -------
    tuple or None
        (mean Spearman correlation over all pairs of measures, each measure's mean correlation with the
        others), over the pairs every measure covers; None with fewer than 3 such pairs or 2 measures.
    """
    complete = cross.values.dropna(axis=1, how="any")
    if complete.shape[1] < 3 or complete.shape[0] < 2:
        return None
    signed = np.array([
        complete.loc[m].to_numpy() * (1.0 if cross.larger_is_similar[m] else -1.0) for m in complete.index
    ])
    n = len(signed)
    rho = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(n):
            if i != j:
                rho[i, j] = _spearman(signed[i], signed[j])
    if np.isnan(rho[~np.eye(n, dtype=bool)]).all():
        return None
    per_measure = {m: float(np.nanmean(rho[i])) for i, m in enumerate(complete.index)}
    return float(np.nanmean(rho)), per_measure


LEVEL_ORDER = ("neuron", "mixed", "distributed", "representation", "attention")


def _by_level(measures: Sequence[str], levels: Mapping[str, str]) -> str:
    """Count measures per level, e.g. "mixed 5, distributed 6"."""
    counts = Counter(levels[m] for m in measures)
    ordered = sorted(counts, key=lambda level: LEVEL_ORDER.index(level) if level in LEVEL_ORDER else 99)
    return ", ".join(f"{level} {counts[level]}" for level in ordered)


def findings(
    cross: CrossMeasure,
    controls: Mapping[str, str | None],
    warned: Mapping[str, Sequence[str]],
) -> list[str]:
    """Word what the cross-measure table shows, as plain sentences with no more claim than the numbers carry.

    Parameters
    ----------
    cross : CrossMeasure
        The cross-measure values.
    controls : mapping of str to str or None
        Random-weight controls among the models (see `reprsim.report.explain.random_controls`).
    warned : mapping of str to sequence of str
        Per measure, the categories of the warnings its computation raised.

    Returns
    -------
    list of str
        Plain-text sentences, most general first.
    """
    ranked = [m for m in cross.values.index if len(cross.pair_values(m)) >= 2]
    lines: list[str] = []
    if not ranked:
        lines.append("Fewer than two model pairs could be compared, so there is no ranking of pairs to report.")
    for closest, word in ((True, "most similar"), (False, "least similar")):
        if not ranked:
            break
        winners = {m: best_pair(cross.pair_values(m), cross.larger_is_similar[m], closest) for m in ranked}
        counts = Counter(winners.values())
        top, n_top = counts.most_common(1)[0]
        assert top is not None
        agreeing = [m for m in ranked if winners[m] == top]
        line = (f"{pair_label(top)} is the {word} pair under {n_top} of {len(ranked)} measures "
                f"({_by_level(agreeing, cross.levels)}).")
        others = [m for m in ranked if winners[m] != top]
        if others:
            rest = Counter(winners[m] for m in others).most_common(2)
            named = "; ".join(f"{pair_label(p)} under {', '.join(m for m in others if winners[m] == p)}"
                              for p, _ in rest if p is not None)
            line += f" Otherwise: {named}" + ("; and others." if len(rest) < len(set(counts)) - 1 else ".")
        lines.append(line)
    agreement = ranking_agreement(cross)
    if agreement is not None:
        mean, per_measure = agreement
        word = "broadly agree" if mean >= 0.7 else "partly agree" if mean >= 0.3 else "disagree"
        odd = min(per_measure, key=lambda m: per_measure[m])
        lines.append(f"Measures {word} on the order of the pairs from most to least similar (mean Spearman "
                     f"correlation between measures {mean:.2f}); the one least in line with the others is {odd} "
                     f"({per_measure[odd]:.2f}).")
    lines += _control_findings(cross, controls, ranked)
    flagged = sorted(m for m, categories in warned.items() if categories)
    if flagged:
        categories = sorted({c for m in flagged for c in warned[m]})
        lines.append(f"{len(flagged)} measure(s) raised warnings while computed ({', '.join(categories)}): "
                     f"{', '.join(flagged)}. Read their values with the warning in their section.")
    if cross.skipped:
        lines.append(f"No model-to-model value for {', '.join(cross.skipped)} (see their sections).")
    return lines


def _control_findings(cross: CrossMeasure, controls: Mapping[str, str | None], ranked: Sequence[str]) -> list[str]:
    """Compare trained pairs with pairs that involve a random-weight control, per measure."""
    if not controls or not ranked:
        return []
    above = []
    counted = []
    for m in ranked:
        values = cross.pair_values(m)
        trained = [v for (a, b), v in values.items() if a not in controls and b not in controls]
        control = [v for (a, b), v in values.items() if a in controls or b in controls]
        if not trained or not control:
            continue
        counted.append(m)
        sign = 1.0 if cross.larger_is_similar[m] else -1.0
        if sign * min(trained, key=lambda v: sign * v) > sign * max(control, key=lambda v: sign * v):
            above.append(m)
    if not counted:
        return []
    below = [m for m in counted if m not in above]
    line = (f"Under {len(above)} of {len(counted)} measures every pair of trained models is more similar than "
            "every pair involving a random-weight control.")
    if below:
        line += (f" Under {', '.join(below)} some pair with a control scores as high as a trained pair: there the "
                 "value may reflect architecture or input statistics more than learned structure.")
    return [line]
