"""Intervals and p-values for the section 3 findings, from the results table's replicates.

Every finding is a function of model-to-model values computed on the same sentence blocks, so it is resampled
replicate by replicate (`reprsim.analysis.model_stats`): the g-th leave-one-block-out value, or the b-th
bootstrap replicate, of the finding is the finding computed from the g-th (b-th) replicate of every value it
uses. Each finding is oriented so that a positive statistic means it holds:

- families: mean within-family similarity minus mean across-family similarity (the other way round for
  distances);
- random controls: sim(real, other) minus sim(control, other), per row;
- fine-tuning: minus the least-squares slope of the similarity to the base (distances negated) on the layer
  index, so that a positive value means "higher layers changed more".

The p-value is two-sided, that of a zero statistic (`reprsim.inference.difference_statistics`); a finding is
``significant`` when its statistic is positive and p <= alpha. Without replicates every statistic is NaN and
``significant`` is False: the finding then holds or not only as a point estimate.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from reprsim.analysis.model_stats import ModelStat, ModelStats
from reprsim.inference.combine import REPLICATE_KINDS, InferenceWarning, difference_statistics
from reprsim.results import LayerId, ResultTable
from reprsim.validation.findings_design import StudyDesign

STAT_COLUMNS = ["ci_low", "ci_high", "p_value", "significant"]


def oriented_statistics(value: float, replicates: np.ndarray | None, kind: str, alpha: float) -> dict[str, object]:
    """The interval, p-value of zero and significance of a statistic oriented so that positive means it holds.

    Parameters
    ----------
    value : float
        The statistic on all blocks.
    replicates : numpy.ndarray or None
        Its replicates: (G,) leave-one-block-out values or (B,) bootstrap replicates.
    kind : str
        ``"jackknife"`` or ``"bootstrap"``.
    alpha : float
        The level.

    Returns
    -------
    dict
        ``ci_low``, ``ci_high``, ``p_value`` (NaN without usable replicates) and ``significant``.
    """
    missing: dict[str, object] = {"ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan, "significant": False}
    if replicates is None or kind not in REPLICATE_KINDS or not math.isfinite(value):
        return missing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InferenceWarning)
        found = difference_statistics(value, replicates, 0.0, np.zeros_like(replicates), kind, alpha)
    if found.ci_low is None or found.ci_high is None or found.p_value is None:
        return missing
    return {"ci_low": found.ci_low, "ci_high": found.ci_high, "p_value": found.p_value,
            "significant": bool(value > 0 and found.p_value <= alpha)}


def _replicates(stats: Sequence[ModelStat | None]) -> tuple[str, np.ndarray] | None:
    """The kind and the (values, R) replicates of several model-level values, if all have them alike."""
    arrays = [s.replicates for s in stats if s is not None and s.replicates is not None]
    kinds = {s.kind for s in stats if s is not None}
    if not stats or len(arrays) != len(stats) or len(kinds) != 1 or len({a.size for a in arrays}) != 1:
        return None
    return kinds.pop(), np.stack(arrays)


def family_statistics(families: pd.DataFrame, stats: Mapping[str, ModelStats], design: StudyDesign,
                      larger: Mapping[str, bool], models: Sequence[str], alpha: float) -> pd.DataFrame:
    """Per measure, the oriented within-minus-across difference of mean model similarity, with interval and p.

    Parameters
    ----------
    families : pandas.DataFrame
        `reprsim.validation.findings.family_contrast`'s rows.
    stats : mapping of str to ModelStats
        Per measure, the model-level statistics (`reprsim.analysis.model_stats.model_stats`).
    design : StudyDesign
        The design (families).
    larger : mapping of str to bool
        The measures and their orientation.
    models : sequence of str
        The models of the table.
    alpha : float
        The level.

    Returns
    -------
    pandas.DataFrame
        `families` with ``difference`` and `STAT_COLUMNS` added.
    """
    kept = design.family_models(list(models)) if design.families else []
    extra = []
    for measure, within_mean, across_mean in families[["measure", "within_mean", "across_mean"]].itertuples(
        index=False
    ):
        own = stats.get(measure, ModelStats({}, {}))
        sign = 1.0 if larger[measure] else -1.0
        value = sign * (float(within_mean) - float(across_mean))
        within = [own.get(a, b) for a, b in combinations(kept, 2) if design.families[a] == design.families[b]]
        across = [own.get(a, b) for a, b in combinations(kept, 2) if design.families[a] != design.families[b]]
        found = _replicates(within + across) if within and across else None
        row: dict[str, object] = {"difference": value}
        if found is None:
            row.update(oriented_statistics(value, None, "", alpha))
        else:
            kind, reps = found
            reps = sign * (reps[: len(within)].mean(axis=0) - reps[len(within):].mean(axis=0))
            row.update(oriented_statistics(value, reps, kind, alpha))
        extra.append(row)
    added = pd.DataFrame(extra, columns=["difference", *STAT_COLUMNS], index=families.index)
    return pd.concat([families, added], axis=1)


def control_statistics(controls: pd.DataFrame, stats: Mapping[str, ModelStats], larger: Mapping[str, bool],
                       alpha: float) -> pd.DataFrame:
    """Per row of the control contrast, the oriented sim(real, other) - sim(control, other), interval and p.

    Parameters
    ----------
    controls : pandas.DataFrame
        `reprsim.validation.findings.control_contrast`'s rows.
    stats : mapping of str to ModelStats
        Per measure, the model-level statistics.
    larger : mapping of str to bool
        The measures and their orientation.
    alpha : float
        The level.

    Returns
    -------
    pandas.DataFrame
        `controls` with ``difference`` and `STAT_COLUMNS` added.
    """
    extra = []
    for measure, control, real, other, c_value, r_value in controls[
        ["measure", "control", "real", "other", "control_value", "real_value"]
    ].itertuples(index=False):
        sign = 1.0 if larger[measure] else -1.0
        value = sign * (float(r_value) - float(c_value))
        own = stats.get(measure, ModelStats({}, {}))
        found = _replicates([own.get(real, other), own.get(control, other)])
        row: dict[str, object] = {"difference": value}
        if found is None:
            row.update(oriented_statistics(value, None, "", alpha))
        else:
            row.update(oriented_statistics(value, sign * (found[1][0] - found[1][1]), found[0], alpha))
        extra.append(row)
    added = pd.DataFrame(extra, columns=["difference", *STAT_COLUMNS], index=controls.index)
    return pd.concat([controls, added], axis=1)


def slope(layers: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Least-squares slope of values on layers, along the last axis: (..., L) -> (...)."""
    x = layers - layers.mean()
    centred = values - values.mean(axis=-1, keepdims=True)
    return np.asarray((centred * x).sum(axis=-1) / (x * x).sum())


def trend_statistics(part: pd.DataFrame, sign: float, table: ResultTable | None, base: str,
                     alpha: float) -> dict[str, object]:
    """The oriented slope of one fine-tuned model's similarity to its base on depth, with interval and p.

    Parameters
    ----------
    part : pandas.DataFrame
        One (model, measure)'s rows of `reprsim.validation.findings.finetuning_change`, sorted by layer.
    sign : float
        1 for a similarity, -1 for a distance.
    table : ResultTable or None
        The results table (the replicates of each sim(fine-tuned layer l -> base layer l)); None for the
        point estimate only.
    base : str
        The model's base.
    alpha : float
        The level.

    Returns
    -------
    dict
        ``slope`` (minus the slope of the oriented similarity on the layer index: positive when higher
        layers changed more) and `STAT_COLUMNS`.
    """
    model, measure = str(part["model"].iloc[0]), str(part["measure"].iloc[0])
    layers = part["layer"].to_numpy(dtype=np.float64)
    value = float(-slope(layers, sign * part["value"].to_numpy(dtype=np.float64)))
    found = None if table is None else _layer_replicates(table, measure, model, base, [int(x) for x in part["layer"]])
    row: dict[str, object] = {"slope": value}
    if found is None:
        row.update(oriented_statistics(value, None, "", alpha))
    else:
        row.update(oriented_statistics(value, -slope(layers, sign * found[1].T), found[0], alpha))
    return row


def _layer_replicates(table: ResultTable, measure: str, model: str, base: str,
                      layers: Sequence[int]) -> tuple[str, np.ndarray] | None:
    """The kind and (layers, R) replicates of sim(model layer l -> base layer l), if every layer has them."""
    found = [table.uncertainty(measure, LayerId(model, layer), LayerId(base, layer)) for layer in layers]
    stand_in = [ModelStat(0.0, kind=u.replicate_kind or "", replicates=u.replicates) for u in found]
    return _replicates(stand_in)
