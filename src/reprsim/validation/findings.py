"""Section 3: the findings a study of real models should reproduce, computed from its results table.

Given layer-pair similarities of real models (the results-table contract) and a description of the study
(which model belongs to which family, which models are untrained random controls of which real model,
which are fine-tuned from which base), this computes:

- within-family vs across-family similarity of models (families should be more alike);
- random controls vs real models (an untrained copy should be less similar to real models than its
  trained counterpart is);
- divergence between measures: the Spearman correlation, over model pairs, of the model-to-model
  similarities of two measures (Wu et al.: maxsim and CKA rank model pairs differently);
- fine-tuning change per layer: sim(fine-tuned layer l -> base layer l).

Model-to-model similarity is the docs/measures.md aggregate (mean over layers of the best-matching layer),
symmetrised over the two directions; it comes from `reprsim.analysis`.

The study design is `reprsim.validation.findings_design.StudyDesign` (importable from here too); the Markdown
rendering of the findings is `reprsim.validation.findings_report.findings_markdown`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from reprsim.analysis import finetune_similarity, larger_means_similar, model_to_model
from reprsim.analysis.model_stats import model_stats
from reprsim.results import ResultTable
from reprsim.validation.findings_design import StudyDesign
from reprsim.validation.findings_input import REQUIRED_COLUMNS, as_result_table, check_design
from reprsim.validation.findings_stats import (
    STAT_COLUMNS,
    control_statistics,
    family_statistics,
    trend_statistics,
)

__all__ = [
    "REQUIRED_COLUMNS",
    "StudyDesign",
    "StudyFindings",
    "control_contrast",
    "family_contrast",
    "finetuning_change",
    "finetuning_trend",
    "measure_divergence",
    "study_findings",
]


@dataclass(frozen=True)
class StudyFindings:
    """The findings of a study, each a tidy DataFrame (empty when the design does not allow it).

    Attributes
    ----------
    model_similarity : pandas.DataFrame
        Model-to-model similarity: ``model_a``, ``model_b``, ``measure``, ``value``, ``symmetric`` (see
        `reprsim.analysis.model_to_model`).
    families : pandas.DataFrame
        See `family_contrast`.
    controls : pandas.DataFrame
        See `control_contrast`.
    divergence : pandas.DataFrame
        See `measure_divergence`.
    finetuning : pandas.DataFrame
        See `finetuning_change`.
    finetuning_trend : pandas.DataFrame
        See `finetuning_trend`.
    alpha : float
        The level of the statistics.

    With replicates in the table (``reprsim compare --ci``), `families`, `controls` and `finetuning_trend`
    carry each finding's oriented statistic (``difference``, or ``slope`` for the trend: positive means the
    finding holds), its interval ``ci_low``/``ci_high``, the p-value of no effect and ``significant``
    (positive and p <= alpha); see `reprsim.validation.findings_stats`. Without, these are NaN and False.
    """

    model_similarity: pd.DataFrame  # model_a, model_b, measure, value, symmetric
    families: pd.DataFrame  # measure, within_mean, across_mean, within_pairs, across_pairs, within_more_similar, stats
    controls: pd.DataFrame  # measure, control, real, other, control_value, real_value, control_less_similar, stats
    divergence: pd.DataFrame  # measure_a, measure_b, spearman, n_pairs
    finetuning: pd.DataFrame  # model, base, layer, measure, level, value
    finetuning_trend: pd.DataFrame  # model, measure, spearman, first_layer, last_layer, higher_layers_change_more
    alpha: float = 0.05


def _orientation(measures: Sequence[str], larger_is_similar: Mapping[str, bool] | None) -> dict[str, bool]:
    """Orient each measure: the caller's mapping first, then the registry (KeyError if neither knows it)."""
    given = dict(larger_is_similar or {})
    return {m: larger_means_similar(m, given.get(m)) for m in measures}


def study_findings(
    table: ResultTable | pd.DataFrame,
    design: StudyDesign,
    measures: Sequence[str] | None = None,
    larger_is_similar: Mapping[str, bool] | None = None,
) -> StudyFindings:
    """Compute the findings of a study of real models from its results table.

    Parameters
    ----------
    table : ResultTable or pandas.DataFrame
        The results; a bare frame needs at least the columns ``model_a``, ``layer_a``, ``model_b``,
        ``layer_b``, ``measure``, ``direction`` and ``value`` (``level`` is then taken from the registry).
    design : StudyDesign
        The families, random controls and fine-tuned models, by display name.
    measures : sequence of str, optional
        The measures to use; default every representation-level measure in the table.
    larger_is_similar : mapping of str to bool, optional
        Per measure, whether larger means more similar; default from the measure registry.

    Returns
    -------
    StudyFindings
        Model-to-model similarity (symmetrised over both directions), the family contrast, the random-control
        contrast, the divergence between measures, the fine-tuning change per layer and its trend with depth.

    Raises
    ------
    KeyError
        If the design names a model the table lacks, a measure is not in the table, a measure's direction is
        unknown, or a needed pair is missing.
    ValueError
        If `table` is neither a ResultTable nor a DataFrame, the frame lacks a required column, families are
        given but a family model has none, or fewer than two models are in the table.
    """
    results = as_result_table(table)
    check_design(results, design)
    chosen = (
        [m for m in results.measures() if results.level(m) == "representation"] if measures is None else list(measures)
    )
    absent = [m for m in chosen if m not in results.measures()]
    if absent:
        raise KeyError(f"measure(s) {absent} are not in the results table; it has {results.measures()}")
    larger = _orientation(chosen, larger_is_similar)
    similarity = pd.concat([model_to_model(results, m, larger_is_similar=larger[m]) for m in chosen], ignore_index=True)
    tuned = finetuning_change(results, design, chosen)
    alpha = results.alpha
    stats = {m: model_stats(results, m, results.models(), larger[m], alpha) for m in chosen} \
        if results.has_arrays() else {}
    return StudyFindings(
        model_similarity=similarity,
        families=family_statistics(family_contrast(similarity, design, larger), stats, design, larger,
                                   results.models(), alpha),
        controls=control_statistics(control_contrast(similarity, design, larger), stats, larger, alpha),
        divergence=measure_divergence(similarity, design, larger),
        finetuning=tuned,
        finetuning_trend=finetuning_trend(tuned, larger, results, design, alpha),
        alpha=alpha,
    )


def _pair_values(similarity: pd.DataFrame, measure: str) -> dict[frozenset[str], float]:
    """Symmetrised model-to-model value of one measure per unordered model pair."""
    part = similarity[similarity["measure"] == measure]
    return {
        frozenset((a, b)): float(v) for a, b, v in zip(part["model_a"], part["model_b"], part["symmetric"], strict=True)
    }


def family_contrast(similarity: pd.DataFrame, design: StudyDesign, larger: Mapping[str, bool]) -> pd.DataFrame:
    """Compare the mean model similarity within families with the mean across families, per measure.

    Only the family models (no random controls, no fine-tuned copies) enter.

    Parameters
    ----------
    similarity : pandas.DataFrame
        Model-to-model similarity (`StudyFindings.model_similarity`); its ``symmetric`` column is used.
    design : StudyDesign
        The design; without families the result is empty.
    larger : mapping of str to bool
        The measures, each with whether larger means more similar.

    Returns
    -------
    pandas.DataFrame
        One row per measure: ``measure``, ``within_mean``, ``across_mean`` (NaN without such pairs),
        ``within_pairs``, ``across_pairs`` and ``within_more_similar`` (within-family pairs are more similar
        on average, oriented by the measure's direction; False without pairs of both kinds).
    """
    columns = ["measure", "within_mean", "across_mean", "within_pairs", "across_pairs", "within_more_similar"]
    if not design.families:
        return pd.DataFrame(columns=columns)
    rows = []
    for measure in larger:
        values = _pair_values(similarity, measure)
        models = design.family_models(sorted({m for pair in values for m in pair}))
        within = [
            values[frozenset(p)] for p in combinations(models, 2) if design.families[p[0]] == design.families[p[1]]
        ]
        across = [
            values[frozenset(p)] for p in combinations(models, 2) if design.families[p[0]] != design.families[p[1]]
        ]
        within_mean = float(np.mean(within)) if within else float("nan")
        across_mean = float(np.mean(across)) if across else float("nan")
        rows.append(
            {
                "measure": measure,
                "within_mean": within_mean,
                "across_mean": across_mean,
                "within_pairs": len(within),
                "across_pairs": len(across),
                "within_more_similar": bool(within and across and ((within_mean > across_mean) == larger[measure])),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def control_contrast(similarity: pd.DataFrame, design: StudyDesign, larger: Mapping[str, bool]) -> pd.DataFrame:
    """Compare each random control with its real model, as seen from every other family model.

    For each random control c of real model r and each other family model m, sim(c, m) is set beside
    sim(r, m). m = r is left out: the contrast needs the same third model on both sides; so are fine-tuned
    copies (a copy of r is trivially closer to r than to r's control).

    Parameters
    ----------
    similarity : pandas.DataFrame
        Model-to-model similarity (`StudyFindings.model_similarity`); its ``symmetric`` column is used.
    design : StudyDesign
        The design; without random controls the result is empty.
    larger : mapping of str to bool
        The measures, each with whether larger means more similar.

    Returns
    -------
    pandas.DataFrame
        Columns ``measure``, ``control``, ``real``, ``other``, ``control_value``, ``real_value`` and
        ``control_less_similar`` (the control is further from m than r is, oriented by the measure's
        direction).

    Raises
    ------
    KeyError
        If a needed model pair is missing from `similarity`.
    """
    columns = ["measure", "control", "real", "other", "control_value", "real_value", "control_less_similar"]
    rows = []
    for measure in larger:
        values = _pair_values(similarity, measure)
        models = sorted({m for pair in values for m in pair})
        for control, real in design.random_controls.items():
            for other in design.family_models(models):
                if other == real:
                    continue
                c_value, r_value = values[frozenset((control, other))], values[frozenset((real, other))]
                rows.append(
                    {
                        "measure": measure,
                        "control": control,
                        "real": real,
                        "other": other,
                        "control_value": c_value,
                        "real_value": r_value,
                        "control_less_similar": (c_value < r_value) if larger[measure] else (c_value > r_value),
                    }
                )
    return pd.DataFrame(rows, columns=columns)


def measure_divergence(similarity: pd.DataFrame, design: StudyDesign, larger: Mapping[str, bool]) -> pd.DataFrame:
    """Correlate, over model pairs, the model similarities of every two measures (Spearman).

    The pairs are those of the family models (no random controls, no fine-tuned copies: a copy and its base
    are close under every measure, which would pass for agreement). Distances are negated first, so +1
    always means "the two measures rank model pairs alike". A pair of measures needs at least 3 model pairs
    (3 models) in common; with fewer it has no row, since a rank correlation of 2 points is always +-1.

    Parameters
    ----------
    similarity : pandas.DataFrame
        Model-to-model similarity (`StudyFindings.model_similarity`); its ``symmetric`` column is used.
    design : StudyDesign
        The design (to leave out controls and fine-tuned copies).
    larger : mapping of str to bool
        The measures, each with whether larger means more similar.

    Returns
    -------
    pandas.DataFrame
        One row per pair of measures: ``measure_a``, ``measure_b``, ``spearman`` and ``n_pairs``.
    """
    columns = ["measure_a", "measure_b", "spearman", "n_pairs"]
    per_measure = {m: _pair_values(similarity, m) for m in larger}
    kept = set(design.family_models(sorted(set(similarity["model_a"]) | set(similarity["model_b"]))))
    rows = []
    for measure_a, measure_b in combinations(larger, 2):
        a_values, b_values = per_measure[measure_a], per_measure[measure_b]
        pairs = sorted((p for p in a_values if p in b_values and p <= kept), key=sorted)
        if len(pairs) < 3:
            continue
        sign_a = 1.0 if larger[measure_a] else -1.0
        sign_b = 1.0 if larger[measure_b] else -1.0
        rho = spearmanr([sign_a * a_values[p] for p in pairs], [sign_b * b_values[p] for p in pairs]).statistic
        rows.append({"measure_a": measure_a, "measure_b": measure_b, "spearman": float(rho), "n_pairs": len(pairs)})
    return pd.DataFrame(rows, columns=columns)


def finetuning_change(table: ResultTable, design: StudyDesign, measures: Sequence[str]) -> pd.DataFrame:
    """Compute sim(fine-tuned layer l -> base layer l) for every fine-tuned model of the design, per measure.

    Parameters
    ----------
    table : ResultTable
        The results table.
    design : StudyDesign
        The design; without fine-tuned models the result is empty.
    measures : sequence of str
        The measures.

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``base``, ``layer``, ``measure``, ``level`` and ``value`` (see
        `reprsim.analysis.finetune_similarity`).

    Raises
    ------
    KeyError
        If a model, measure or needed pair is not in the table.
    ValueError
        If a fine-tuned model has a layer its base lacks.
    """
    columns = ["model", "base", "layer", "measure", "level", "value"]
    parts = []
    for base in sorted(set(design.finetuned.values())):
        tuned = [m for m, b in design.finetuned.items() if b == base]
        part = finetune_similarity(table, base, tuned, measures)
        parts.append(part.assign(base=base)[columns])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def finetuning_trend(finetuning: pd.DataFrame, larger: Mapping[str, bool], table: ResultTable | None = None,
                     design: StudyDesign | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """Test, per fine-tuned model and measure, whether the similarity to the base falls with depth.

    Wu et al. 2020 and Merchant et al. 2020 find that fine-tuning changes higher layers more.

    Parameters
    ----------
    finetuning : pandas.DataFrame
        The output of `finetuning_change` (columns ``model``, ``measure``, ``layer``, ``value``).
    larger : mapping of str to bool
        Whether larger means more similar, per measure; a measure not in it counts as a similarity.
    table : ResultTable, optional
        The results table, for the slope's interval and p-value from its replicates.
    design : StudyDesign, optional
        The design (each fine-tuned model's base, from the ``base`` column when not given).
    alpha : float, default 0.05
        The level.

    Returns
    -------
    pandas.DataFrame
        One row per (model, measure) with at least 3 layers: ``model``, ``measure``, ``spearman`` (the rank
        correlation between layer index and sim(fine-tuned layer l, base layer l), distances negated so that
        a negative value always means "higher layers changed more"), ``first_layer`` and ``last_layer`` (the
        similarities at the lowest and highest layer), ``higher_layers_change_more`` (spearman < 0), and the
        slope with its statistics (`reprsim.validation.findings_stats.trend_statistics`; NaN without
        `table`).
    """
    columns = ["model", "measure", "spearman", "first_layer", "last_layer", "higher_layers_change_more", "slope",
               *STAT_COLUMNS]
    rows = []
    for (model, measure), part in finetuning.groupby(["model", "measure"], sort=False):
        part = part.sort_values("layer")
        if len(part) < 3:
            continue
        sign = 1.0 if larger.get(str(measure), True) else -1.0
        base = design.finetuned[str(model)] if design is not None else str(part.get("base", pd.Series([""])).iloc[0])
        rho = float(spearmanr(part["layer"], sign * part["value"]).statistic)
        rows.append(
            {
                "model": model,
                "measure": measure,
                "spearman": rho,
                "first_layer": float(part["value"].iloc[0]),
                "last_layer": float(part["value"].iloc[-1]),
                "higher_layers_change_more": bool(rho < 0),
                **trend_statistics(part, sign, table, base, alpha),
            }
        )
    return pd.DataFrame(rows, columns=columns)
