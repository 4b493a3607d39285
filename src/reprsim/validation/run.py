"""The validation suite end to end: train seeded networks, run sections 1 and 2, write tables and figures.

`run_validation(config)` returns a `ValidationResult` of tidy DataFrames; `write_outputs(result, out_dir)`
writes them as CSV, a Markdown report and two figures. Presets: "full" (the documented numbers, < 45 min
on 2 cores), "quick" (~2 min) and "smoke" (seconds; for tests and CI).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from reprsim.validation.figures import plot_identification, plot_sensitivity
from reprsim.validation.markdown import markdown_table
from reprsim.validation.seeds import (
    cross_seed_table,
    identification_accuracy,
    identification_hits,
    same_layer_similarity,
)
from reprsim.validation.sensitivity import ORDERS, deletion_curves, sensitivity_summary
from reprsim.validation.specs import KORNBLITH_TABLE2_OTHER, MeasureSpec, representation_measures
from reprsim.validation.train import (
    LMConfig,
    MLPConfig,
    TrainedNetwork,
    load_digits_split,
    split_lm_sentences,
    train_digits_mlp,
    train_word_lm,
)


@dataclass(frozen=True)
class MLPSetting:
    """Seeded digits classifiers of one shape.

    Attributes
    ----------
    name : str
        The setting's name in the results.
    config : MLPConfig
        The shape and schedule.
    """

    name: str
    config: MLPConfig


@dataclass(frozen=True)
class LMSetting:
    """Seeded word-level language models of one shape.

    Attributes
    ----------
    name : str
        The setting's name in the results.
    config : LMConfig
        The shape and schedule.
    """

    name: str
    config: LMConfig


Setting = MLPSetting | LMSetting


@dataclass(frozen=True)
class ValidationConfig:
    """Everything that determines a validation run (written beside the results as ``config.json``).

    Attributes
    ----------
    preset : str
        The preset's name (``"full"``, ``"quick"``, ``"smoke"``), or any label.
    seeds : tuple of int
        At least two distinct seeds; one network is trained per seed and setting.
    settings : tuple of MLPSetting or LMSetting
        At least one setting, with distinct names, run in order.
    max_rows : int, default 2000
        The row subsample of the measures that build n x n matrices.
    rbf_bandwidths : tuple of float, default (0.4, 0.8)
        The RBF CKA bandwidths, one spec each.
    deletion_points : int, default 14
        About how many component counts per layer in section 2.
    measures : tuple of str or None, default None
        The registry measures to validate; None for every representation-level measure.
    threads : int, default 1
        Torch CPU threads.

    Raises
    ------
    ValueError
        If there are fewer than two seeds, seeds repeat, or the settings are empty or share a name.
    """

    preset: str
    seeds: tuple[int, ...]
    settings: tuple[Setting, ...]
    max_rows: int = 2000
    rbf_bandwidths: tuple[float, ...] = (0.4, 0.8)
    deletion_points: int = 14
    measures: tuple[str, ...] | None = None
    threads: int = 1

    def __post_init__(self) -> None:
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"need at least 2 distinct seeds, got {self.seeds}")
        names = [s.name for s in self.settings]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"settings must be non-empty with distinct names, got {names}")

    @classmethod
    def preset_named(cls, name: str, threads: int = 1) -> ValidationConfig:
        """Build a preset configuration.

        Parameters
        ----------
        name : {"full", "quick", "smoke"}
            ``"full"``: 5 seeds, two digits MLPs (4 and 8 hidden layers) and a 6-layer LM, the documented
            numbers (under 45 minutes on 2 cores); ``"quick"``: 3 seeds, smaller networks (about 2 minutes);
            ``"smoke"``: 3 tiny networks per setting, seconds, for tests and CI.
        threads : int, default 1
            Torch CPU threads.

        Returns
        -------
        ValidationConfig
            The configuration.

        Raises
        ------
        ValueError
            If `name` is not a preset.
        """
        if name == "full":
            return cls(
                preset=name,
                seeds=(0, 1, 2, 3, 4),
                settings=(
                    MLPSetting("digits-mlp", MLPConfig(hidden_layers=4, width=128, epochs=30)),
                    MLPSetting("digits-mlp-deep", MLPConfig(hidden_layers=8, width=128, epochs=30)),
                    LMSetting("word-lm", LMConfig(n_layers=6, d_model=128, epochs=6, heldout_sentences=100)),
                ),
                max_rows=1500,
                deletion_points=14,
                threads=threads,
            )
        if name == "quick":
            return cls(
                preset=name,
                seeds=(0, 1, 2),
                settings=(
                    MLPSetting("digits-mlp", MLPConfig(hidden_layers=4, width=64, epochs=20)),
                    LMSetting("word-lm", LMConfig(n_layers=4, d_model=64, epochs=3, heldout_sentences=60)),
                ),
                max_rows=600,
                deletion_points=8,
                threads=threads,
            )
        if name == "smoke":
            return cls(
                preset=name,
                seeds=(0, 1, 2),
                settings=(
                    MLPSetting("digits-mlp", MLPConfig(hidden_layers=3, width=32, epochs=15)),
                    LMSetting("word-lm", LMConfig(n_layers=2, d_model=32, n_heads=2, epochs=1, heldout_sentences=20)),
                ),
                max_rows=300,
                deletion_points=6,
                threads=threads,
            )
        raise ValueError(f"unknown preset {name!r}; use full, quick or smoke")

    def specs(self) -> list[MeasureSpec]:
        """Build the specs of the measures to validate (see `reprsim.validation.representation_measures`).

        Returns
        -------
        list of MeasureSpec
            Every representation-level registry measure, or those of `measures`.
        """
        return representation_measures(self.rbf_bandwidths, self.max_rows, names=self.measures)


WARNING_COLUMNS: tuple[str, ...] = ("setting", "section", "measure", "warning", "count")


@dataclass
class ValidationResult:
    """All tables of a validation run; every frame has a ``setting`` column.

    Attributes
    ----------
    config : ValidationConfig
        The configuration run.
    networks : pandas.DataFrame
        One row per trained network: ``setting``, ``seed``, ``layers``, ``rows``, ``width``, ``metric``
        (its name) and ``value``.
    cross_seed : pandas.DataFrame
        Every measure between every layer pair of every two seeds (`reprsim.validation.cross_seed_table`).
    hits : pandas.DataFrame
        Layer identification per trial (`reprsim.validation.identification_hits`).
    accuracy : pandas.DataFrame
        Layer-identification accuracy (`reprsim.validation.identification_accuracy`).
    noise_floor : pandas.DataFrame
        Same-layer similarity across seeds (`reprsim.validation.same_layer_similarity`).
    curves : pandas.DataFrame
        Component-deletion curves of the first seed's network (`reprsim.validation.deletion_curves`).
    sensitivity : pandas.DataFrame
        Their summary (`reprsim.validation.sensitivity_summary`).
    warnings : pandas.DataFrame
        Warnings the measures raised: ``setting``, ``section``, ``measure``, ``warning``, ``count``.
    seconds : dict of str to float
        Wall time per step (training, identification, deletion) and setting.
    """

    config: ValidationConfig
    networks: pd.DataFrame
    cross_seed: pd.DataFrame
    hits: pd.DataFrame
    accuracy: pd.DataFrame
    noise_floor: pd.DataFrame
    curves: pd.DataFrame
    sensitivity: pd.DataFrame
    warnings: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)


def _train_setting(
    setting: Setting,
    seeds: Sequence[int],
    threads: int,
    sentences: Sequence[Sequence[str]] | None,
    progress: bool,
) -> list[TrainedNetwork]:
    """Train one network per seed for a setting (language models need the corpus sentences)."""
    if isinstance(setting, MLPSetting):
        cfg = setting.config
        digits = load_digits_split(cfg.test_fraction, cfg.split_seed)
        return [train_digits_mlp(digits, cfg, s, threads, progress, setting.name) for s in seeds]
    if sentences is None:
        raise ValueError(f"setting {setting.name} trains language models and needs corpus sentences")
    data = split_lm_sentences(sentences, setting.config)
    return [train_word_lm(data, setting.config, s, threads, progress, setting.name) for s in seeds]


def run_validation(
    config: ValidationConfig,
    sentences: Sequence[Sequence[str]] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    on_setting_done: Callable[[ValidationResult], object] | None = None,
) -> ValidationResult:
    """Run sections 1 and 2 for every setting of a configuration, one setting after the other.

    For each setting, one network per seed is trained, every measure compares every layer pair of every
    two seeds (layer identification and the seed noise floor), and the first seed's network has its
    principal components deleted (sensitivity). The torch thread count is restored afterwards.

    Parameters
    ----------
    config : ValidationConfig
        What to run (see `ValidationConfig.preset_named`).
    sentences : sequence of sequence of str, optional
        The sentences (lists of words) that train the language models; default the built-in corpus.
    progress : bool, default True
        Show progress bars.
    log : callable, default print
        Receives one line per trained setting (the networks' scores).
    on_setting_done : callable, optional
        Receives the combined results so far after each setting (the CLI writes them, so a long run that is
        interrupted keeps what it finished).

    Returns
    -------
    ValidationResult
        The tables of every setting.

    Raises
    ------
    ValueError
        If a measure returns a non-finite value, a network's layers cannot be compared, or the corpus has
        too few sentences for a language-model setting.
    """
    if any(isinstance(s, LMSetting) for s in config.settings) and sentences is None:
        from reprsim.corpus import Corpus

        sentences = Corpus.builtin().sentences
    parts: list[ValidationResult] = []
    old_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        for entry in config.settings:
            parts.append(_validate_setting(entry, config, sentences, progress, log))
            if on_setting_done is not None:
                on_setting_done(_combine(config, parts))
    finally:
        torch.set_num_threads(old_threads)
    return _combine(config, parts)


def _validate_setting(
    entry: Setting,
    config: ValidationConfig,
    sentences: Sequence[Sequence[str]] | None,
    progress: bool,
    log: Callable[[str], None],
) -> ValidationResult:
    """Train one setting's seeded networks, then run layer identification and component deletion."""
    specs = config.specs()
    setting = entry.name
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    networks = _train_setting(entry, config.seeds, config.threads, sentences, progress)
    seconds[f"{setting}: training"] = time.perf_counter() - start
    log(
        f"{setting}: trained {len(networks)} networks, "
        + ", ".join(f"seed {n.seed} {n.metric_name} {n.metric:.3f}" for n in networks)
    )
    nets = pd.DataFrame(
        {
            "setting": setting,
            "seed": [n.seed for n in networks],
            "layers": [len(n.layers) for n in networks],
            "rows": [n.layers[0].shape[0] for n in networks],
            "width": [n.layers[-1].shape[1] for n in networks],
            "metric": [n.metric_name for n in networks],
            "value": [n.metric for n in networks],
        }
    )
    start = time.perf_counter()
    counts: dict[str, Counter[str]] = {}
    table = cross_seed_table(networks, specs, counts, progress)
    hits = identification_hits(table, {s.label: s.larger_is_similar for s in specs}, setting)
    floor = same_layer_similarity(table, setting)
    seconds[f"{setting}: layer identification"] = time.perf_counter() - start
    warning_rows = _warning_rows(setting, "identification", counts)

    start = time.perf_counter()
    counts = {}
    curves = deletion_curves(networks[0], specs, ORDERS, config.deletion_points, counts, progress)
    seconds[f"{setting}: component deletion"] = time.perf_counter() - start
    warning_rows += _warning_rows(setting, "sensitivity", counts)
    return ValidationResult(
        config=config,
        networks=nets,
        cross_seed=table.frame.assign(setting=setting),
        hits=hits,
        accuracy=identification_accuracy(hits, [s.label for s in specs]),
        noise_floor=floor,
        curves=curves,
        sensitivity=sensitivity_summary(curves, floor, specs),
        warnings=pd.DataFrame(warning_rows, columns=WARNING_COLUMNS),
        seconds=seconds,
    )


def _combine(config: ValidationConfig, parts: Sequence[ValidationResult]) -> ValidationResult:
    """Stack per-setting results into one."""
    if not parts:
        raise ValueError("no setting results to combine")

    def stacked(name: str) -> pd.DataFrame:
        """Concatenate one table over the parts."""
        return pd.concat([getattr(p, name) for p in parts], ignore_index=True)

    return ValidationResult(
        config=config,
        networks=stacked("networks"),
        cross_seed=stacked("cross_seed"),
        hits=stacked("hits"),
        accuracy=stacked("accuracy"),
        noise_floor=stacked("noise_floor"),
        curves=stacked("curves"),
        sensitivity=stacked("sensitivity"),
        warnings=stacked("warnings"),
        seconds={k: v for p in parts for k, v in p.seconds.items()},
    )


def _warning_rows(setting: str, section: str, counts: dict[str, Counter[str]]) -> list[dict[str, Any]]:
    """Turn per-measure warning counts into rows of the warnings table."""
    return [
        {"setting": setting, "section": section, "measure": measure, "warning": name, "count": n}
        for measure, counter in counts.items()
        for name, n in sorted(counter.items())
    ]


# ----------------------------------------------------------------------------------------------------------
# Reporting
# ----------------------------------------------------------------------------------------------------------


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
