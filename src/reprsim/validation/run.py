"""The validation suite end to end: train seeded networks, run sections 1 and 2, write tables and figures.

`run_validation(config)` returns a `ValidationResult` of tidy DataFrames; `write_outputs(result, out_dir)`
writes them as CSV, a Markdown report and two figures. Presets: "full" (the documented numbers, < 45 min
on 2 cores), "quick" (~2 min) and "smoke" (seconds; for tests and CI).

The configuration and result records live in `reprsim.validation.run_config` and the writing of outputs in
`reprsim.validation.run_report`; their public names are importable from here too.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch

from reprsim.validation.run_config import (
    WARNING_COLUMNS,
    LMSetting,
    MLPSetting,
    Setting,
    ValidationConfig,
    ValidationResult,
)
from reprsim.validation.run_report import validation_markdown, write_outputs
from reprsim.validation.seeds import (
    cross_seed_table,
    identification_accuracy,
    identification_hits,
    same_layer_similarity,
)
from reprsim.validation.sensitivity import ORDERS, deletion_curves, sensitivity_summary
from reprsim.validation.train_common import TrainedNetwork
from reprsim.validation.train_digits import load_digits_split, train_digits_mlp
from reprsim.validation.train_lm import split_lm_sentences, train_word_lm

__all__ = [
    "WARNING_COLUMNS",
    "LMSetting",
    "MLPSetting",
    "Setting",
    "ValidationConfig",
    "ValidationResult",
    "run_validation",
    "validation_markdown",
    "write_outputs",
]


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
