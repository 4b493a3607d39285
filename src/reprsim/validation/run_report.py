"""Writing a validation run: its Markdown report, CSV tables, configuration and figures.

`validation_markdown(result)` renders the report; `write_outputs(result, out_dir)` writes everything.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from reprsim.validation.figures import plot_identification, plot_sensitivity
from reprsim.validation.markdown import markdown_table
from reprsim.validation.run_config import ValidationResult
from reprsim.validation.specs import KORNBLITH_TABLE2_OTHER


def _setting_names(result: ValidationResult) -> list[str]:
    """List the settings present in the result (a partial result lacks the later ones), in run order."""
    return list(dict.fromkeys(result.networks["setting"]))


def _accuracy_table(result: ValidationResult) -> pd.DataFrame:
    """Tabulate measure x setting accuracy (%) beside Kornblith et al.'s Table 2, plus a chance row."""
    acc = result.accuracy
    wide = acc.pivot(index="measure", columns="setting", values="accuracy").reindex(
        index=list(dict.fromkeys(acc["measure"])), columns=_setting_names(result)
    )
    paper = acc.drop_duplicates("measure").set_index("measure")
    wide["Kornblith et al. (CNN, CIFAR-10)"] = paper["paper_accuracy"]
    wide["paper's index"] = paper["paper_index"]
    wide = wide.reset_index()
    chance = acc.drop_duplicates("setting").set_index("setting")["chance"]
    chance_row: dict[str, object] = {"measure": "chance (1/L)"}
    chance_row.update({s: float(chance.get(s, float("nan"))) for s in _setting_names(result)})
    chance_row["Kornblith et al. (CNN, CIFAR-10)"] = float("nan")  # ~1/9-1/10: 10-layer CNNs, logits excluded
    chance_row["paper's index"] = ""
    return pd.concat([wide, pd.DataFrame([chance_row])], ignore_index=True)


def _sensitivity_table(result: ValidationResult, setting: str) -> pd.DataFrame:
    """Tabulate one setting's sensitivity summary readably, both deletion orders side by side."""
    part = result.sensitivity[result.sensitivity["setting"] == setting]
    top = part[part["order"] == "top"].set_index("measure")
    bottom = part[part["order"] == "bottom"].set_index("measure")
    return pd.DataFrame(
        {
            "measure": top.index,
            "rho top": top["spearman_mean"].to_numpy(),
            "worst layer": top["spearman_worst"].to_numpy(),
            "flat layers": top["flat_layers"].to_numpy(),
            "value, all but 1 PC gone": top["value_at_max_k"].to_numpy(),
            "seed floor": top["noise_floor"].to_numpy(),
            "var. removed at detection (top)": top["variance_removed_at_detection"].to_numpy(),
            "rho bottom": bottom["spearman_mean"].reindex(top.index).to_numpy(),
            "var. removed at detection (bottom)": bottom["variance_removed_at_detection"].reindex(top.index).to_numpy(),
            "detected layers (bottom)": bottom["detected_layers"].reindex(top.index).to_numpy(),
        }
    )


def validation_markdown(result: ValidationResult) -> str:
    """Render a validation run as a Markdown report.

    Parameters
    ----------
    result : ValidationResult
        The run (possibly partial).

    Returns
    -------
    str
        The report: networks, layer-identification accuracy beside Kornblith et al. (2019, Table 2),
        sensitivity to deleted components per setting, warnings raised by the measures, timings.
    """
    cfg = result.config
    nets = (
        result.networks.groupby(["setting", "metric"], sort=False)
        .agg(
            seeds=("seed", "size"),
            layers=("layers", "first"),
            width=("width", "first"),
            rows=("rows", "first"),
            mean=("value", "mean"),
            min=("value", "min"),
            max=("value", "max"),
        )
        .reset_index()
    )
    other = ", ".join(f"{p.index} {p.accuracy:g}%" for p in KORNBLITH_TABLE2_OTHER)
    lines = [
        f"# reprsim validation ({cfg.preset} preset)",
        "",
        "## Networks",
        "",
        markdown_table(nets),
        "",
        "## 1. Identifying corresponding layers across seeds (accuracy %, Kornblith et al. 2019 Table 2)",
        "",
        "A hit: the layer of the other network most similar to layer i (argmax of S + S^T; argmin for "
        "distances) is layer i, strictly (ties are misses).",
        "",
        markdown_table(_accuracy_table(result), digits=1),
        "",
        f"Paper rows no registry measure computes: {other}.",
        "",
        "## 2. Sensitivity to deleting principal components (Ding et al. 2021)",
        "",
        "rho: Spearman correlation of the number of deleted components with the similarity to the intact "
        "layer, mean over layers (-1 = falls monotonically; +1 expected for distances); flat layers: "
        "no change at all (rho undefined). Seed floor: value between the same layer of two seeds. Detection: the "
        "smallest fraction of variance removed at which the damaged layer scores below the seed floor "
        "(median over layers; empty = never).",
        "",
    ]
    for setting in _setting_names(result):
        lines += [f"### {setting}", "", markdown_table(_sensitivity_table(result, setting)), ""]
    if len(result.warnings):
        summary = result.warnings.groupby(["measure", "warning"], sort=False)["count"].sum().reset_index()
        lines += ["## Warnings raised by the measures", "", markdown_table(summary), ""]
    lines += [
        "## Time (s)",
        "",
        markdown_table(
            pd.DataFrame({"step": list(result.seconds), "seconds": list(result.seconds.values())}), digits=1
        ),
        "",
    ]
    return "\n".join(lines)


def write_outputs(result: ValidationResult, out_dir: str | Path) -> list[Path]:
    """Write a validation run's tables, report and figures.

    Files written: ``networks.csv``, ``cross_seed_similarities.csv``, ``identification_hits.csv``,
    ``identification_accuracy.csv``, ``noise_floor.csv``, ``deletion_curves.csv``,
    ``sensitivity_summary.csv``, ``warnings.csv``, ``config.json`` (the configuration, timings and torch
    version), ``validation.md`` (see `validation_markdown`), ``identification_accuracy.png`` and
    ``sensitivity_curves.png``.

    Parameters
    ----------
    result : ValidationResult
        The run (possibly partial).
    out_dir : str or Path
        The folder, created if needed; existing files of the same names are overwritten.

    Returns
    -------
    list of Path
        The files written, in the order above.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "networks.csv": result.networks,
        "cross_seed_similarities.csv": result.cross_seed,
        "identification_hits.csv": result.hits,
        "identification_accuracy.csv": result.accuracy,
        "noise_floor.csv": result.noise_floor,
        "deletion_curves.csv": result.curves,
        "sensitivity_summary.csv": result.sensitivity,
        "warnings.csv": result.warnings,
    }
    written = []
    for name, frame in tables.items():
        frame.to_csv(out / name, index=False)
        written.append(out / name)
    config = {**asdict(result.config), "seconds": result.seconds, "torch": torch.__version__}
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "validation.md").write_text(validation_markdown(result), encoding="utf-8")
    written += [out / "config.json", out / "validation.md"]
    written.append(plot_identification(result.accuracy, out / "identification_accuracy.png"))
    written.append(plot_sensitivity(result.curves, result.noise_floor, out / "sensitivity_curves.png"))
    return written
