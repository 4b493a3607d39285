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

Model-to-model similarity is the measures.md aggregate (mean over layers of the best-matching layer),
symmetrised over the two directions; it comes from `reprsim.analysis`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.stats import spearmanr

from reprsim.analysis import finetune_similarity, larger_means_similar, model_to_model
from reprsim.results import COLUMNS, ResultTable
from reprsim.validation.markdown import markdown_table

# The columns a bare layer-pair frame must have; level, n_rows and subsample may be filled in.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "model_a",
    "layer_a",
    "model_b",
    "layer_b",
    "measure",
    "direction",
    "value",
)


@dataclass(frozen=True)
class StudyDesign:
    """What the models of a study are, by display name.

    families: model -> family (e.g. "bert", "gpt2"). random_controls: untrained control -> the real model it
    is a randomly initialised copy of. finetuned: fine-tuned model -> its base model.
    """

    families: Mapping[str, str] = field(default_factory=dict)
    random_controls: Mapping[str, str] = field(default_factory=dict)
    finetuned: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | Path) -> StudyDesign:
        """Read `families`, `random_controls` and `finetuned` mappings (each optional) from a YAML file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"study design file {str(path)!r} does not exist")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{str(path)!r}: expected a mapping with families/random_controls/finetuned")
        unknown = set(loaded) - {"families", "random_controls", "finetuned"}
        if unknown:
            raise ValueError(f"{str(path)!r}: unknown key(s) {sorted(unknown)}")
        parts = {}
        for key in ("families", "random_controls", "finetuned"):
            value = loaded.get(key) or {}
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise ValueError(f"{str(path)!r}: {key} must map model names to names")
            parts[key] = dict(value)
        return cls(**parts)

    def real_models(self, models: Sequence[str]) -> list[str]:
        """The models that are not random controls, in the given order."""
        return [m for m in models if m not in self.random_controls]

    def family_models(self, models: Sequence[str]) -> list[str]:
        """The models the family contrast is about: neither random controls nor fine-tuned copies (a copy
        of a family member would count its own base as a family neighbour)."""
        return [m for m in self.real_models(models) if m not in self.finetuned]


@dataclass(frozen=True)
class StudyFindings:
    """The four findings, each a tidy DataFrame (empty when the design does not allow it)."""

    model_similarity: pd.DataFrame  # model_a, model_b, measure, value, symmetric
    families: pd.DataFrame  # measure, within_mean, across_mean, within_pairs, across_pairs, within_more_similar
    controls: pd.DataFrame  # measure, control, real, other, control_value, real_value, control_less_similar
    divergence: pd.DataFrame  # measure_a, measure_b, spearman, n_pairs
    finetuning: pd.DataFrame  # model, base, layer, measure, level, value
    finetuning_trend: pd.DataFrame  # model, measure, spearman, first_layer, last_layer, higher_layers_change_more


def as_result_table(table: ResultTable | pd.DataFrame) -> ResultTable:
    """Accept a ResultTable or a frame with at least REQUIRED_COLUMNS.

    Missing contract columns are filled: `level` from the measure registry ("attention" for attention
    measures, else "representation"), `subsample` False and `n_rows` 1 (unknown row counts; no finding here
    uses them).
    """
    if isinstance(table, ResultTable):
        return table
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"expected a ResultTable or a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"results frame lacks column(s) {missing}; has {list(table.columns)}")
    frame = table.copy()
    if "level" not in frame.columns:
        frame["level"] = [_registry_level(str(m)) for m in frame["measure"]]
    if "n_rows" not in frame.columns:
        frame["n_rows"] = 1
    if "subsample" not in frame.columns:
        frame["subsample"] = False
    return ResultTable(frame[[*COLUMNS, *[c for c in frame.columns if c not in COLUMNS]]])


def _registry_level(measure: str) -> str:
    from reprsim import measures as registry

    try:
        return "attention" if registry.get(measure).level == "attention" else "representation"
    except KeyError:
        return "representation"


def orientation(measures: Sequence[str], larger_is_similar: Mapping[str, bool] | None) -> dict[str, bool]:
    """larger_is_similar per measure: the caller's mapping first, then the registry (KeyError if neither)."""
    given = dict(larger_is_similar or {})
    return {m: larger_means_similar(m, given.get(m)) for m in measures}


def check_design(table: ResultTable, design: StudyDesign) -> None:
    """Every model the design names must be in the table; with families given, every real model needs one."""
    known = set(table.models())
    named = (
        set(design.families)
        | set(design.random_controls)
        | set(design.random_controls.values())
        | set(design.finetuned)
        | set(design.finetuned.values())
    )
    unknown = sorted(named - known)
    if unknown:
        raise KeyError(f"study design names model(s) {unknown} that are not in the results table ({sorted(known)})")
    if design.families:
        without = [m for m in design.family_models(table.models()) if m not in design.families]
        if without:
            raise ValueError(f"no family given for model(s) {without}")


def study_findings(
    table: ResultTable | pd.DataFrame,
    design: StudyDesign,
    measures: Sequence[str] | None = None,
    larger_is_similar: Mapping[str, bool] | None = None,
) -> StudyFindings:
    """Compute the study findings (see the module docstring) for `measures` (default: all in the table)."""
    results = as_result_table(table)
    check_design(results, design)
    chosen = (
        [m for m in results.measures() if results.level(m) == "representation"] if measures is None else list(measures)
    )
    absent = [m for m in chosen if m not in results.measures()]
    if absent:
        raise KeyError(f"measure(s) {absent} are not in the results table; it has {results.measures()}")
    larger = orientation(chosen, larger_is_similar)
    similarity = pd.concat([model_to_model(results, m, larger_is_similar=larger[m]) for m in chosen], ignore_index=True)
    tuned = finetuning_change(results, design, chosen)
    return StudyFindings(
        model_similarity=similarity,
        families=family_contrast(similarity, design, larger),
        controls=control_contrast(similarity, design, larger),
        divergence=measure_divergence(similarity, design, larger),
        finetuning=tuned,
        finetuning_trend=finetuning_trend(tuned, larger),
    )


def _pair_values(similarity: pd.DataFrame, measure: str) -> dict[frozenset[str], float]:
    """Symmetrised model-to-model value of one measure per unordered model pair."""
    part = similarity[similarity["measure"] == measure]
    return {
        frozenset((a, b)): float(v) for a, b, v in zip(part["model_a"], part["model_b"], part["symmetric"], strict=True)
    }


def family_contrast(similarity: pd.DataFrame, design: StudyDesign, larger: Mapping[str, bool]) -> pd.DataFrame:
    """Mean symmetrised model similarity within and across families, per measure (real models only)."""
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
    """For each random control c of real model r and each other real model m: sim(c, m) beside sim(r, m).

    m = r is left out: the contrast needs the same third model on both sides; so are fine-tuned copies (a
    copy of r is trivially closer to r than to r's control). control_less_similar: the control is further
    from m than r is (oriented by the measure's direction).
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
    """Spearman correlation over model pairs between the model similarities of every two measures.

    The pairs are those of the family models (no random controls, no fine-tuned copies: a copy and its base
    are close under every measure, which would pass for agreement). Distances are negated first, so +1
    always means "the two measures rank model pairs alike". Needs at least 3 model pairs (3 models); with
    fewer the table is empty, since a rank correlation of 2 points is always +-1.
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
    """sim(fine-tuned layer l -> base layer l) for every fine-tuned model of the design, per measure."""
    columns = ["model", "base", "layer", "measure", "level", "value"]
    parts = []
    for base in sorted(set(design.finetuned.values())):
        tuned = [m for m, b in design.finetuned.items() if b == base]
        part = finetune_similarity(table, base, tuned, measures)
        parts.append(part.assign(base=base)[columns])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def finetuning_trend(finetuning: pd.DataFrame, larger: Mapping[str, bool]) -> pd.DataFrame:
    """Per fine-tuned model and measure: does similarity to the base fall with depth?

    spearman is the rank correlation between layer index and sim(fine-tuned layer l, base layer l), with
    distances negated so that a negative value always means "higher layers changed more" (Wu et al. 2020,
    Merchant et al. 2020). first_layer/last_layer are the similarities at the lowest and highest layer.
    """
    columns = ["model", "measure", "spearman", "first_layer", "last_layer", "higher_layers_change_more"]
    rows = []
    for (model, measure), part in finetuning.groupby(["model", "measure"], sort=False):
        part = part.sort_values("layer")
        if len(part) < 3:
            continue
        sign = 1.0 if larger.get(str(measure), True) else -1.0
        rho = float(spearmanr(part["layer"], sign * part["value"]).statistic)
        rows.append(
            {
                "model": model,
                "measure": measure,
                "spearman": rho,
                "first_layer": float(part["value"].iloc[0]),
                "last_layer": float(part["value"].iloc[-1]),
                "higher_layers_change_more": bool(rho < 0),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def findings_markdown(findings: StudyFindings) -> str:
    """The findings as Markdown tables (summaries; the full tables are in the CSV files)."""
    out = ["## Real models", ""]
    if len(findings.families):
        out += _section("Within- vs across-family model similarity", findings.families)
    if len(findings.controls):
        summary = (
            findings.controls.groupby("measure", sort=False)
            .agg(
                control_mean=("control_value", "mean"),
                real_mean=("real_value", "mean"),
                control_less_similar=("control_less_similar", "mean"),
                n=("control_value", "size"),
            )
            .reset_index()
        )
        out += _section("Random controls vs trained models", summary)
    if len(findings.divergence):
        out += _section("Agreement between measures over model pairs (Spearman)", findings.divergence)
    if len(findings.finetuning):
        wide = findings.finetuning.pivot_table(
            index=["model", "layer"], columns="measure", values="value"
        ).reset_index()
        out += _section("Fine-tuned vs base, layer by layer", wide)
    if len(findings.finetuning_trend):
        out += _section(
            "Does fine-tuning change higher layers more? (Spearman of layer vs similarity to the base)",
            findings.finetuning_trend,
        )
    return "\n".join(out)


def _section(title: str, frame: pd.DataFrame) -> list[str]:
    """A level-3 heading and its table (values to 3 digits), as Markdown lines."""
    return [f"### {title}", "", markdown_table(frame, digits=3), ""]
