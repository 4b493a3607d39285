"""A study: one validated YAML config holding corpus, models, extraction options, measures and outputs.

Validation is explicit and strict: an unknown key, a wrong type or a value outside its allowed set is a
`StudyConfigError` that names the key path (for example ``extraction.subword``) and what is allowed. A study
is read with `load_study` and run with `reprsim.pipeline.run_study` (``reprsim run STUDY.yaml``).

A study file (every key but ``models`` is optional; the classes below give each key's default):

```yaml
name: my-study
corpus: {source: builtin, max_sentences: 1000, max_words: 40}   # or a .txt / .conllu path
models:
  - {name: MiniLM, model: minilm}
  - {name: SmolLM2, model: smollm2, layers: [0, 6, 12, 18, 24, 30]}
extraction: {rows: word, subword: last, attention: true, batch_size: 32, device: auto, dtype: float32}
compare: {measures: [all], subsample_rows: 5000, attention_sentences: 500, seed: 0, ci: none, null: none}
finetuning: {base: MiniLM, finetuned: [MiniLM-tuned]}
output: {dir: reprsim-out}                                      # store/, results.parquet, report/
```
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from reprsim.inference.options import COMPARE_ARGUMENTS, JACKKNIFE_METHODS


class StudyConfigError(ValueError):
    """A study config is malformed; the message names the key path and what is allowed.

    A subclass of ValueError, so callers that catch ValueError for bad input catch it too.
    """


@dataclass(frozen=True)
class ModelSpec:
    """One model of a study (an item of ``models``).

    Attributes
    ----------
    name : str
        The display name in the store, the results and the report; unique within the study. Defaults to
        `model`.
    model : str
        A preset name, a Hugging Face hub id or a local model folder (see `reprsim.extraction.extract`).
    revision : str or None, default None
        A hub revision. It is validated but not passed on: extraction records the commit that a hub id
        resolves to.
    trust_remote_code : bool, default False
        Allow the model's own code from the hub to run.
    layers : "all" or list of int or None, default None
        The layers to extract for this model (0 = embeddings), overriding ``extraction.layers``.
    """

    name: str
    model: str
    revision: str | None = None
    trust_remote_code: bool = False
    layers: str | list[int] | None = None  # overrides extraction.layers for this model


@dataclass(frozen=True)
class CorpusSpec:
    """The study's corpus (``corpus``: a mapping, or just the source as a string).

    Attributes
    ----------
    source : str, default "builtin"
        ``"builtin"``, or a plain-text or CoNLL-U file (see `reprsim.corpus.Corpus.load`). A relative path is
        looked up beside the study file first, then relative to the current folder.
    max_sentences : int or None, default None
        Keep the first this many sentences (at least 1); more than the corpus has is an error at run time.
    max_words : int or None, default None
        Drop sentences longer than this many words (at least 1), before `max_sentences` is applied.
    """

    source: str = "builtin"
    max_sentences: int | None = None
    max_words: int | None = None


@dataclass(frozen=True)
class ExtractionSpec:
    """Extraction options shared by every model (``extraction``); see `reprsim.extraction.extract`.

    Attributes
    ----------
    layers : "all" or list of int, default "all"
        The layers to extract (0 = embeddings, l = block l); a model's own ``layers`` overrides it.
    subword : {"last", "first", "mean"}, default "last"
        How a word's vector is made from its subword tokens.
    attention : bool, default True
        Also store each layer's word x word attention maps.
    causal_attention : bool, default False
        Keep only attention to the word itself and earlier words (renormalised), for every model, so that
        encoders and decoders can be compared.
    batch_size : int, default 32
        Sentences per forward pass (at least 1).
    device : {"auto", "cpu", "cuda"}, default "auto"
        Where the models run; ``"auto"`` is CUDA when torch sees a GPU.
    dtype : {"float32", "float16", "bfloat16"}, default "float32"
        The models' precision, and the store's.
    long_sentences : {"error", "window"}, default "error"
        A sentence over a model's context limit is an error, or is cut into overlapping windows of words.
    rows : {"word", "last-token", "mean", "first-token"}, default "word"
        One row per word, or one per sentence pooled from the model's tokens (see `reprsim.extraction.rows`).
        Sentence rows store no attention: ``attention`` then defaults to false, and true is an error.
    backend : {"local", "ray"}, default "local"
        Run the models here one after another, or one Ray actor per model (docs: guide/scaling).
    address : str, optional
        The Ray cluster's address (default: a local cluster).
    gpus_per_model : float, optional
        GPUs each Ray actor declares (default: 1 when the cluster has GPUs, else 0).
    corpus_shards : int, default 1
        On Ray, one actor per model and corpus shard (runs of whole 256-sentence windows), the parts joined
        into the model's entry.
    """

    layers: str | list[int] = "all"
    subword: str = "last"
    attention: bool = True
    causal_attention: bool = False
    batch_size: int = 32
    device: str = "auto"
    dtype: str = "float32"
    long_sentences: str = "error"
    rows: str = "word"
    backend: str = "local"
    address: str | None = None
    gpus_per_model: float | None = None
    corpus_shards: int = 1


@dataclass(frozen=True)
class CompareSpec:
    """All-pairs comparison options (``compare``); see `reprsim.comparison.compare`.

    Attributes
    ----------
    measures : list of str, default ["all"]
        Measure registry names, or ``"all"``; a single string is accepted as a one-item list.
    device : {"auto", "cpu", "cuda"}, default "auto"
        Where the streaming engine runs.
    chunk_rows : int, default 8192
        Rows per chunk of the streaming pass (at least 2).
    subsample_rows : int, default 5000
        The seeded row subsample of the n x n measures (RBF CKA, RSA, mutual k-NN); at least 10.
    attention_sentences : int, default 500
        The seeded sentence subsample of the attention measures (at least 1).
    seed : int, default 0
        The seed of both subsamples, the bootstrap and the permutations.
    ci : {"bootstrap", "jackknife", "none"}, default "none"
        Confidence intervals over sentence blocks.
    null : {"analytic", "permutation", "none"}, default "none"
        Null baselines.
    blocks : int, default 50
        G, sentence blocks resampled.
    resamples : int, default 1000
        B, bootstrap replicates.
    permutations : int, default 200
        K, permutations of the null.
    alpha : float, default 0.05
        Intervals of level 1 - alpha; the calibration's level.
    jackknife : {"linearised", "exact"}, default "linearised"
        How the linear measures' leave-one-block-out values are found (`reprsim.compare`).
    backend : {"local", "ray"}, default "local"
        Where the linear pass runs (`reprsim.compare`; docs: guide/scaling).
    address : str, optional
        The Ray cluster's address (default: a local cluster).
    shards : int, optional
        Row shards of the Ray backend (default: the cluster's CPUs).
    space : {"auto", "feature", "gram"}, default "auto"
        The route of linear and debiased CKA (`reprsim.compare`): the pass's cross-products, each layer's
        n x n Gram matrix, or the cheaper.
    precision : {"auto", "float64", "float32"}, default "auto"
        The linear measures' products (`reprsim.compare`; docs: guide/comparison).
    """

    measures: list[str] = field(default_factory=lambda: ["all"])
    device: str = "auto"
    chunk_rows: int = 8192
    subsample_rows: int = 5000
    attention_sentences: int = 500
    seed: int = 0
    ci: str = "none"
    null: str = "none"
    blocks: int = 50
    resamples: int = 1000
    permutations: int = 200
    alpha: float = 0.05
    jackknife: str = "linearised"
    backend: str = "local"
    address: str | None = None
    shards: int | None = None
    space: str = "auto"
    precision: str = "auto"

    def inference_arguments(self) -> dict[str, Any]:
        """The statistics options as `reprsim.compare` keywords."""
        return {k: getattr(self, k) for k in COMPARE_ARGUMENTS}


@dataclass(frozen=True)
class FinetuneSpec:
    """One fine-tuning comparison of the report (an item of ``finetuning``).

    Attributes
    ----------
    base : str
        The name of the model the others were fine-tuned from (a study model's `ModelSpec.name`).
    finetuned : list of str
        The names of the fine-tuned models (a single string is accepted as a one-item list).
    """

    base: str
    finetuned: list[str]


@dataclass(frozen=True)
class Study:
    """A validated study: what `reprsim.pipeline.run_study` runs.

    Attributes
    ----------
    name : str
        The study name (default ``"study"``), used in the report title.
    corpus : CorpusSpec
        The corpus.
    models : list of ModelSpec
        The models, at least one, with unique names.
    extraction : ExtractionSpec
        The extraction options.
    compare : CompareSpec
        The comparison options.
    store : Path
        The activation store folder (``output.store``; default ``<output.dir>/store``).
    results : Path
        The results table file (``output.results``; default ``<output.dir>/results.parquet``).
    report : Path or None
        The report folder (``output.report``; default ``<output.dir>/report``), or None when the config says
        ``report: false``.
    finetuning : list of FinetuneSpec
        The fine-tuning comparisons of the report (possibly none).

    Notes
    -----
    ``output.dir`` defaults to ``reprsim-out``; every output path is relative to the study file's folder.
    """

    name: str
    corpus: CorpusSpec
    models: list[ModelSpec]
    extraction: ExtractionSpec
    compare: CompareSpec
    store: Path
    results: Path
    report: Path | None
    finetuning: list[FinetuneSpec]


_TOP_KEYS = {"name", "corpus", "models", "extraction", "compare", "finetuning", "output"}
_CHOICES = {
    "extraction.subword": {"last", "first", "mean"},
    "extraction.device": {"auto", "cpu", "cuda"},
    "extraction.dtype": {"float32", "float16", "bfloat16"},
    "extraction.long_sentences": {"error", "window"},
    "extraction.rows": {"word", "last-token", "mean", "first-token"},
    "compare.device": {"auto", "cpu", "cuda"},
    "compare.ci": {"bootstrap", "jackknife", "none"},
    "compare.null": {"analytic", "permutation", "none"},
    "compare.jackknife": set(JACKKNIFE_METHODS),
    "compare.space": {"auto", "feature", "gram"},  # reprsim.comparison_records.SPACES
    "compare.precision": {"auto", "float64", "float32"},  # reprsim.engine.checks.PRECISION_CHOICES
    "extraction.backend": {"local", "ray"},
    "compare.backend": {"local", "ray"},  # reprsim.comparison.BACKENDS, without importing the engine here
}


def _fail(path: str, message: str) -> StudyConfigError:
    """Build the error for one key path."""
    return StudyConfigError(f"study config: `{path}`: {message}")


def _mapping(value: Any, path: str, allowed: set[str]) -> dict[str, Any]:
    """Check that a value is a mapping (None counts as empty) with only allowed keys."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(path, f"must be a mapping, got {type(value).__name__}")
    if None in value:  # YAML reads the key `null:` (compare's null baselines) as None
        value = {"null" if k is None else k: v for k, v in value.items()}
    unknown = sorted(set(value) - allowed, key=str)
    if unknown:
        raise _fail(f"{path}.{unknown[0]}" if path else unknown[0],
                    f"unknown key; allowed: {', '.join(sorted(allowed))}")
    return value


def _typed(value: Any, path: str, kind: Any, minimum: int | None = None) -> Any:
    """Check a value's type (and lower bound), returning it unchanged."""
    # bool is a subclass of int: reject it where a number is asked for.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _fail(path, f"must be {names}, got {value!r}")
    if minimum is not None and value < minimum:
        raise _fail(path, f"must be at least {minimum}, got {value}")
    return value


def _choice(value: Any, path: str) -> str:
    """Check that a value is one of the allowed choices of its key path."""
    allowed = _CHOICES[path]
    if value not in allowed:
        raise _fail(path, f"{value!r} is not allowed; choose one of {', '.join(sorted(allowed))}")
    return str(value)


def _alpha(value: Any) -> float:
    """Check ``compare.alpha``: a number in (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise _fail("compare.alpha", f"must be a number in (0, 1), got {value!r}")
    return float(value)


def _optional_int(raw: dict[str, Any], key: str, path: str) -> int | None:
    """Read an optional positive integer."""
    value = raw.get(key)
    return None if value is None else _typed(value, f"{path}.{key}", int, minimum=1)


def _optional_str(value: Any, path: str) -> str | None:
    """Check an optional non-empty string."""
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise _fail(path, f"must be a non-empty string, got {value!r}")
    return value


def _corpus(raw: Any) -> CorpusSpec:
    """Validate ``corpus`` (a source string or a mapping)."""
    if isinstance(raw, str):
        return CorpusSpec(source=raw)
    d = _mapping(raw, "corpus", {"source", "max_sentences", "max_words"})
    return CorpusSpec(
        source=_typed(d.get("source", "builtin"), "corpus.source", str),
        max_sentences=_optional_int(d, "max_sentences", "corpus"),
        max_words=_optional_int(d, "max_words", "corpus"),
    )


def _models(raw: Any) -> list[ModelSpec]:
    """Validate ``models`` (strings or mappings; names unique)."""
    if not isinstance(raw, list) or not raw:
        raise _fail("models", "must be a non-empty list of models (each `{name: ..., model: ...}` or a string)")
    specs: list[ModelSpec] = []
    for i, item in enumerate(raw):
        path = f"models[{i}]"
        if isinstance(item, str):
            specs.append(ModelSpec(name=item, model=item))
            continue
        d = _mapping(item, path, {"name", "model", "revision", "trust_remote_code", "layers"})
        if "model" not in d:
            raise _fail(f"{path}.model", "is required (a preset name, hub name or local path)")
        model = _typed(d["model"], f"{path}.model", str)
        specs.append(ModelSpec(
            name=_typed(d.get("name", model), f"{path}.name", str),
            model=model,
            revision=None if d.get("revision") is None else _typed(d["revision"], f"{path}.revision", str),
            trust_remote_code=_typed(d.get("trust_remote_code", False), f"{path}.trust_remote_code", bool),
            layers=None if d.get("layers") is None else _layers(d["layers"], f"{path}.layers"),
        ))
    names = [s.name for s in specs]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise _fail("models", f"two models are named {duplicate!r}; names must be unique")
    return specs


def _layers(value: Any, path: str = "extraction.layers") -> str | list[int]:
    """Validate a layer choice: "all" or a non-empty list of indices >= 0."""
    if value == "all":
        return "all"
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                  for v in value):
        return list(value)
    raise _fail(path, f"must be 'all' or a list of layer indices >= 0, got {value!r}")


def _extraction(raw: Any) -> ExtractionSpec:
    """Validate ``extraction``."""
    d = _mapping(raw, "extraction", set(ExtractionSpec.__dataclass_fields__))
    base = ExtractionSpec()
    rows = _choice(d.get("rows", base.rows), "extraction.rows")
    for key in ("attention", "causal_attention"):  # sentence rows have no word x word maps
        if rows != base.rows and d.get(key) is True:
            raise _fail(f"extraction.{key}", f"must be false with rows: {rows} (sentence rows store no attention)")
    _ray_only(d, "extraction", ("address", "gpus_per_model", "corpus_shards"), base.backend)
    return ExtractionSpec(
        layers=_layers(d.get("layers", base.layers)),
        subword=_choice(d.get("subword", base.subword), "extraction.subword"),
        rows=rows,
        attention=_typed(d.get("attention", base.attention and rows == base.rows), "extraction.attention", bool),
        causal_attention=_typed(d.get("causal_attention", base.causal_attention), "extraction.causal_attention",
                                bool),
        batch_size=_typed(d.get("batch_size", base.batch_size), "extraction.batch_size", int, minimum=1),
        device=_choice(d.get("device", base.device), "extraction.device"),
        dtype=_choice(d.get("dtype", base.dtype), "extraction.dtype"),
        long_sentences=_choice(d.get("long_sentences", base.long_sentences), "extraction.long_sentences"),
        backend=_choice(d.get("backend", base.backend), "extraction.backend"),
        address=_optional_str(d.get("address", base.address), "extraction.address"),
        gpus_per_model=_gpus(d.get("gpus_per_model", base.gpus_per_model)),
        corpus_shards=_typed(d.get("corpus_shards", base.corpus_shards), "extraction.corpus_shards", int,
                             minimum=1),
    )


def _ray_only(d: dict[str, Any], section: str, keys: Sequence[str], default_backend: str) -> None:
    """Refuse the Ray backend's keys without ``backend: ray`` (they would be ignored)."""
    if d.get("backend", default_backend) == "ray":
        return
    for key in keys:
        if d.get(key) is not None and not (key == "corpus_shards" and d[key] == 1):
            raise _fail(f"{section}.{key}", "applies to the Ray backend only: add `backend: ray`")


def _gpus(value: Any) -> float | None:
    """Check ``extraction.gpus_per_model``: a number of at least 0, or absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise _fail("extraction.gpus_per_model", f"must be a number of at least 0, got {value!r}")
    return float(value)


def _compare(raw: Any) -> CompareSpec:
    """Validate ``compare``, checking the measures against the registry."""
    d = _mapping(raw, "compare", set(CompareSpec.__dataclass_fields__))
    base = CompareSpec()
    measures = d.get("measures", base.measures)
    if isinstance(measures, str):
        measures = [measures]
    if not isinstance(measures, list) or not all(isinstance(m, str) for m in measures) or not measures:
        raise _fail("compare.measures", f"must be a list of measure names or 'all', got {measures!r}")
    from reprsim import measures as registry

    canonical = []
    for m in measures:
        if m == "all":
            canonical.append(m)
            continue
        try:
            canonical.append(registry.get(m).name)  # a name, or a spec with options: svcca(keep=0.9)
        except KeyError:
            known = sorted(set(registry.available()) | {"all"})
            raise _fail("compare.measures", f"unknown measure {m!r}; available: {', '.join(known)}") from None
        except ValueError as exc:
            raise _fail("compare.measures", str(exc)) from None
    _ray_only(d, "compare", ("address", "shards"), base.backend)
    return CompareSpec(
        measures=canonical,
        device=_choice(d.get("device", base.device), "compare.device"),
        chunk_rows=_typed(d.get("chunk_rows", base.chunk_rows), "compare.chunk_rows", int, minimum=2),
        subsample_rows=_typed(d.get("subsample_rows", base.subsample_rows), "compare.subsample_rows", int,
                              minimum=10),
        attention_sentences=_typed(d.get("attention_sentences", base.attention_sentences),
                                   "compare.attention_sentences", int, minimum=1),
        seed=_typed(d.get("seed", base.seed), "compare.seed", int),
        ci=_choice(d.get("ci", base.ci), "compare.ci"),
        null=_choice(d.get("null", base.null), "compare.null"),
        blocks=_typed(d.get("blocks", base.blocks), "compare.blocks", int, minimum=2),
        resamples=_typed(d.get("resamples", base.resamples), "compare.resamples", int, minimum=1),
        permutations=_typed(d.get("permutations", base.permutations), "compare.permutations", int, minimum=1),
        alpha=_alpha(d.get("alpha", base.alpha)),
        jackknife=_choice(d.get("jackknife", base.jackknife), "compare.jackknife"),
        backend=_choice(d.get("backend", base.backend), "compare.backend"),
        address=_optional_str(d.get("address", base.address), "compare.address"),
        shards=_optional_int(d, "shards", "compare"),
        space=_choice(d.get("space", base.space), "compare.space"),
        precision=_choice(d.get("precision", base.precision), "compare.precision"),
    )


def _finetuning(raw: Any, model_names: list[str]) -> list[FinetuneSpec]:
    """Validate ``finetuning`` (one mapping or a list), checking that it names study models."""
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    specs = []
    for i, item in enumerate(items):
        path = f"finetuning[{i}]"
        d = _mapping(item, path, {"base", "finetuned"})
        base = _typed(d.get("base"), f"{path}.base", str)
        tuned = d.get("finetuned")
        if isinstance(tuned, str):
            tuned = [tuned]
        if not isinstance(tuned, list) or not tuned:
            raise _fail(f"{path}.finetuned", "must be a model name or a list of model names")
        for name in [base, *tuned]:
            if name not in model_names:
                raise _fail(path, f"{name!r} is not one of the study's models: {', '.join(model_names)}")
        specs.append(FinetuneSpec(base=base, finetuned=list(tuned)))
    return specs


def _beside(corpus: CorpusSpec, base_dir: Path) -> CorpusSpec:
    """Resolve a relative corpus path beside the study file, like the outputs.

    A path that exists only relative to the current folder is still taken from there.
    """
    source = Path(corpus.source)
    if corpus.source == "builtin" or source.is_absolute() or not (base_dir / source).exists():
        return corpus
    return replace(corpus, source=str(base_dir / source))


def parse_study(raw: Any, base_dir: Path) -> Study:
    """Validate a parsed YAML document into a `Study`.

    Parameters
    ----------
    raw : Any
        The document, as `yaml.safe_load` returns it (a mapping with a ``models`` key).
    base_dir : Path
        The folder relative paths are taken from (the study file's folder): every output path, and a relative
        corpus path that exists there (otherwise the corpus path is left relative to the current folder).

    Returns
    -------
    Study
        The validated study, with defaults filled in.

    Raises
    ------
    StudyConfigError
        If a key is unknown, a required key (``models``, ``models[i].model``) is missing, a value has the
        wrong type, is below its minimum or outside its allowed set, a measure is not in the registry, two
        models share a name, or a fine-tuning comparison names a model that is not in the study. The
        message names the key path.
    """
    d = _mapping(raw, "", _TOP_KEYS)
    if "models" not in d:
        raise _fail("models", "is required")
    models = _models(d["models"])
    out = _mapping(d.get("output"), "output", {"dir", "store", "results", "report"})
    out_dir = base_dir / _typed(out.get("dir", "reprsim-out"), "output.dir", str)

    def path_of(key: str, default: Path) -> Path:
        """Resolve ``output.<key>`` against `base_dir`, or return the default."""
        value = out.get(key)
        return default if value is None else base_dir / _typed(value, f"output.{key}", str)

    report = out.get("report")
    return Study(
        name=_typed(d.get("name", "study"), "name", str),
        corpus=_beside(_corpus(d.get("corpus", "builtin")), base_dir),
        models=models,
        extraction=_extraction(d.get("extraction")),
        compare=_compare(d.get("compare")),
        store=path_of("store", out_dir / "store"),
        results=path_of("results", out_dir / "results.parquet"),
        report=None if report is False else path_of("report", out_dir / "report"),
        finetuning=_finetuning(d.get("finetuning"), [m.name for m in models]),
    )


def load_study(path: str | Path) -> Study:
    """Read and validate a study YAML file.

    Parameters
    ----------
    path : str or Path
        The study file; relative paths inside it are taken from its folder (see `parse_study`).

    Returns
    -------
    Study
        The validated study.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    StudyConfigError
        If the file is not valid YAML or the config is malformed (see `parse_study`).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"study config not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise StudyConfigError(f"study config {p}: not valid YAML: {exc}") from exc
    return parse_study(raw, p.parent)
