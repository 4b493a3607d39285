"""Section 4: Wolfram & Schein's claim 2 (layers at similar relative depths are alike across models), small scale.

Wolfram & Schein 2025 ("Layers at Similar Depths Generate Similar Activations Across LLM Architectures",
COLM) pass 2,048 texts through 24 open-weight LLMs, take each text's last-token vector at every layer and
compare every layer of every model with every layer of every other by mutual k-NN (k = 10). Their claim 2:
the nearest-neighbour relationships "are approximately shared between corresponding layers of different
models", corresponding meaning at a similar relative depth (layer / depth).

Here the packaged models that are installed (MiniLM and SmolLM2 always; MPNet and Gemma-3 where installed)
are extracted with one row per text: the last token for the decoders (SmolLM2, Gemma-3), as in the paper, and
the mean over tokens for the encoders (MiniLM, MPNet: mean pooling is how both were trained to embed a
sentence, and an encoder's last token has no special role). Every layer of every model, the embeddings
included (relative depth 0), is compared with every layer of every other model by `reprsim.measures.mutual_knn`
(k = 10, all texts, its default clipping), and two numbers per ordered model pair (A, B) test the claim:

- for each layer of A, its best match in B (the layer of B with the highest mutual k-NN); the Spearman
  correlation over A's layers of A's relative depth and the best match's relative depth (the claim: > 0);
- the mean mutual k-NN on the relative-depth diagonal band (layer pairs whose relative depths differ by at
  most ``band``) against the chance level k / (n - 1) of n texts, and against the pairs off the band.

The measure is called on the stored rows directly: `reprsim.compare` refuses entries of different poolings
(mean-pooled encoders against last-token decoders), which this section compares on purpose.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from reprsim.corpus import Corpus
from reprsim.extraction.presets import INSTALL_COMMAND, PRESETS, require_installed
from reprsim.extraction.rows import TEXT_ROW_RULES

PAPER = "Wolfram & Schein 2025 (COLM), claim 2"
PAPER_CLAIM = (
    "nearest-neighbour relationships between texts (last token, mutual k-NN with k = 10, 2,048 texts, 24 LLMs) "
    "are approximately shared between corresponding layers of different models: each layer's best match in "
    "another model lies at a similar relative depth, and the depth-normalised similarity matrix has a diagonal "
    "band above chance"
)
PAIR_COLUMNS = ["model_a", "layer_a", "depth_a", "model_b", "layer_b", "depth_b", "mutual_knn"]
SUMMARY_COLUMNS = [
    "model_a", "model_b", "rows_a", "rows_b", "layers_a", "layers_b", "texts", "k", "spearman",
    "mean_depth_offset", "best_in_band", "band", "band_mean", "off_band_mean", "chance", "band_over_chance",
]


@dataclass(frozen=True)
class DepthModel:
    """A packaged model in section 4, and how its text-level rows are pooled.

    Attributes
    ----------
    name : str
        The display name.
    preset : str
        The extraction preset (see `reprsim.extraction.presets`).
    rows : str
        The text-level rows: "last-token", "mean" or "first-token".

    Raises
    ------
    ValueError
        If the preset is unknown or the rows are not text-level ones.
    """

    name: str
    preset: str
    rows: str

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"section 4: unknown preset {self.preset!r}; presets: {', '.join(PRESETS)}")
        if self.rows not in TEXT_ROW_RULES:
            raise ValueError(
                f"section 4: {self.name} rows must be one of {', '.join(TEXT_ROW_RULES)}, got {self.rows!r}"
            )


DEPTH_MODELS: tuple[DepthModel, ...] = (
    DepthModel("MiniLM", "minilm", "mean"),
    DepthModel("MPNet", "mpnet", "mean"),
    DepthModel("SmolLM2", "smollm2", "last-token"),
    DepthModel("Gemma3", "gemma3-270m", "last-token"),
)


@dataclass(frozen=True)
class DepthAlignmentConfig:
    """Section 4's run: which models, on how many texts, with which k and band.

    Attributes
    ----------
    models : tuple of DepthModel, default MiniLM, MPNet, SmolLM2, Gemma3
        The candidates; those whose packages are installed run (at least two must be).
    texts : int, default 500
        The first texts (sentences) of the built-in corpus, after `max_words`.
    max_words : int, default 40
        Drop longer sentences first.
    k : int, default 10
        Neighbours of mutual k-NN (the paper's 10).
    band : float, default 0.1
        Half-width of the diagonal band in relative depth: pairs with ``|depth_a - depth_b| <= band``.
    batch_size : int, default 32
        Extraction batch size.

    Raises
    ------
    ValueError
        If names repeat, k is not in 1 .. texts - 2, texts or max_words is below 1, or band is outside (0, 1).
    """

    models: tuple[DepthModel, ...] = DEPTH_MODELS
    texts: int = 500
    max_words: int = 40
    k: int = 10
    band: float = 0.1
    batch_size: int = 32

    def __post_init__(self) -> None:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"section 4: models need distinct names, got {names}")
        if self.texts < 1 or self.max_words < 1 or self.batch_size < 1:
            raise ValueError(
                f"section 4: texts, max_words and batch_size must be >= 1, got {self.texts}, {self.max_words}, "
                f"{self.batch_size}"
            )
        if not 1 <= self.k <= self.texts - 2:
            raise ValueError(f"section 4: k must be in 1 .. texts - 2 = {self.texts - 2}, got {self.k}")
        if not 0.0 < self.band < 1.0:
            raise ValueError(f"section 4: band must be in (0, 1), got {self.band}")

    @classmethod
    def preset_named(cls, preset: str) -> DepthAlignmentConfig:
        """Size section 4 by the validation preset: 500 texts for "full", 300 otherwise.

        Parameters
        ----------
        preset : str
            "full", "quick" or "smoke".

        Returns
        -------
        DepthAlignmentConfig
            The configuration.
        """
        return cls(texts=500) if preset == "full" else cls(texts=300)


@dataclass(frozen=True)
class DepthAlignmentResult:
    """What `run_depth_alignment` measured.

    Attributes
    ----------
    config : DepthAlignmentConfig
        The run's configuration.
    models : tuple of DepthModel
        The models that ran (the installed ones).
    skipped : tuple of str
        Presets not installed, left out.
    pairs : pandas.DataFrame
        Mutual k-NN of every layer pair of every two models (PAIR_COLUMNS; each unordered model pair once).
    best_matches : pandas.DataFrame
        Per ordered model pair and layer of A: A's relative depth, its best layer in B and that layer's depth.
    summary : pandas.DataFrame
        Per ordered model pair, the claim's numbers (SUMMARY_COLUMNS).
    seconds : dict of str to float
        Time of each step.
    """

    config: DepthAlignmentConfig
    models: tuple[DepthModel, ...]
    skipped: tuple[str, ...]
    pairs: pd.DataFrame
    best_matches: pd.DataFrame
    summary: pd.DataFrame
    seconds: dict[str, float]


def installed_models(config: DepthAlignmentConfig) -> tuple[tuple[DepthModel, ...], tuple[str, ...]]:
    """Split the configured models into those whose packages are installed and those that are not.

    Parameters
    ----------
    config : DepthAlignmentConfig
        The run.

    Returns
    -------
    tuple
        (the installed models, in order; the presets left out).

    Raises
    ------
    FileNotFoundError
        If fewer than two are installed; the message gives the install command and how to skip section 4.
    """
    present, missing = [], []
    for model in config.models:
        try:
            require_installed(model.preset)
            present.append(model)
        except FileNotFoundError:
            missing.append(model.preset)
    if len(present) < 2:
        raise FileNotFoundError(
            f"section 4 compares at least two packaged models, but only {[m.preset for m in present]} of "
            f"{[m.preset for m in config.models]} are installed: run `scripts/setup.sh` (or `{INSTALL_COMMAND}`), "
            "or skip section 4 with --no-depth-alignment"
        )
    return tuple(present), tuple(missing)


def relative_depths(layer_ids: Sequence[int]) -> np.ndarray:
    """Relative depth of each layer: layer / depth, 0 for the embeddings and 1 for the last block.

    Parameters
    ----------
    layer_ids : sequence of int
        Every layer of a model, 0 .. depth.

    Returns
    -------
    numpy.ndarray
        float64 depths in [0, 1].

    Raises
    ------
    ValueError
        If the layers are not 0 .. depth with depth >= 1.
    """
    layers = np.asarray(layer_ids, dtype=np.int64)
    if layers.size < 2 or not np.array_equal(layers, np.arange(layers.size)):
        raise ValueError(f"relative depths need every layer 0 .. depth (depth >= 1), got {list(layer_ids)}")
    return layers / float(layers[-1])


def layer_pair_table(representations: Mapping[str, Sequence[np.ndarray]], k: int) -> pd.DataFrame:
    """Mutual k-NN of every layer of every model with every layer of every later model.

    Parameters
    ----------
    representations : mapping of str to sequence of numpy.ndarray
        Per model (in order), its layers 0 .. depth, each n x width with the same n rows (texts).
    k : int
        Neighbours.

    Returns
    -------
    pandas.DataFrame
        PAIR_COLUMNS, one row per layer pair of each unordered model pair.
    """
    from reprsim.measures import mutual_knn

    names = list(representations)
    records = []
    for i, a in enumerate(names):
        depth_a = relative_depths(range(len(representations[a])))
        for b in names[i + 1 :]:
            depth_b = relative_depths(range(len(representations[b])))
            for la, xa in enumerate(representations[a]):
                for lb, xb in enumerate(representations[b]):
                    value = mutual_knn(xa, xb, k=k, max_rows=None)
                    records.append((a, la, depth_a[la], b, lb, depth_b[lb], value))
    return pd.DataFrame(records, columns=PAIR_COLUMNS)


def both_directions(pairs: pd.DataFrame) -> pd.DataFrame:
    """Each unordered model pair's rows, plus the same rows with A and B swapped (mutual k-NN is symmetric).

    Parameters
    ----------
    pairs : pandas.DataFrame
        PAIR_COLUMNS.

    Returns
    -------
    pandas.DataFrame
        PAIR_COLUMNS, every ordered model pair.
    """
    swapped = pairs.rename(columns={
        "model_a": "model_b", "layer_a": "layer_b", "depth_a": "depth_b",
        "model_b": "model_a", "layer_b": "layer_a", "depth_b": "depth_a",
    })
    return pd.concat([pairs, swapped[PAIR_COLUMNS]], ignore_index=True)


def best_match_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """For each ordered model pair (A, B) and layer of A, the layer of B with the highest mutual k-NN.

    Ties go to the shallower layer of B.

    Parameters
    ----------
    pairs : pandas.DataFrame
        PAIR_COLUMNS (each unordered pair once, or both directions).

    Returns
    -------
    pandas.DataFrame
        Columns model_a, model_b, layer_a, depth_a, best_layer_b, best_depth_b, mutual_knn.
    """
    ordered = both_directions(pairs).drop_duplicates(["model_a", "layer_a", "model_b", "layer_b"])
    ordered = ordered.sort_values(["model_a", "model_b", "layer_a", "layer_b"], kind="stable")
    best = ordered.loc[ordered.groupby(["model_a", "model_b", "layer_a"], sort=False)["mutual_knn"].idxmax()]
    best = best.rename(columns={"layer_b": "best_layer_b", "depth_b": "best_depth_b"})
    columns = ["model_a", "model_b", "layer_a", "depth_a", "best_layer_b", "best_depth_b", "mutual_knn"]
    return best[columns].reset_index(drop=True)


def depth_spearman(depths: np.ndarray, best_depths: np.ndarray) -> float:
    """Spearman correlation of layers' relative depths and their best matches' relative depths.

    Parameters
    ----------
    depths, best_depths : numpy.ndarray
        Per layer of A, its relative depth and its best match's in B.

    Returns
    -------
    float
        The correlation; NaN when every best match lies at one depth (no ranking to correlate).
    """
    if np.ptp(best_depths) == 0 or np.ptp(depths) == 0:
        return float("nan")
    return float(spearmanr(depths, best_depths).statistic)


def depth_summary(pairs: pd.DataFrame, texts: int, k: int, band: float, rows: Mapping[str, str]) -> pd.DataFrame:
    """The claim's numbers per ordered model pair.

    Parameters
    ----------
    pairs : pandas.DataFrame
        PAIR_COLUMNS.
    texts : int
        Rows (texts) each mutual k-NN was computed on: the chance level is k / (texts - 1).
    k : int
        Neighbours.
    band : float
        Half-width of the diagonal band in relative depth.
    rows : mapping of str to str
        Each model's text-level rows rule.

    Returns
    -------
    pandas.DataFrame
        SUMMARY_COLUMNS: spearman (of the depths of each layer of A and of its best match in B),
        mean_depth_offset (mean |depth_a - best depth_b|), best_in_band (share of A's layers whose best match
        lies in the band), band_mean and off_band_mean (mean mutual k-NN on and off the band), chance
        (k / (texts - 1)) and band_over_chance.
    """
    ordered = both_directions(pairs).drop_duplicates(["model_a", "layer_a", "model_b", "layer_b"])
    best = best_match_table(pairs)
    chance = k / (texts - 1)
    records = []
    for (a, b), group in ordered.groupby(["model_a", "model_b"], sort=False):
        matches = best[(best.model_a == a) & (best.model_b == b)]
        offset = (matches.depth_a - matches.best_depth_b).abs().to_numpy()
        on_band = (group.depth_a - group.depth_b).abs() <= band + 1e-12
        band_mean = float(group.mutual_knn[on_band].mean())
        records.append({
            "model_a": a, "model_b": b, "rows_a": rows[a], "rows_b": rows[b],
            "layers_a": int(group.layer_a.nunique()), "layers_b": int(group.layer_b.nunique()),
            "texts": texts, "k": k,
            "spearman": depth_spearman(matches.depth_a.to_numpy(), matches.best_depth_b.to_numpy()),
            "mean_depth_offset": float(offset.mean()), "best_in_band": float((offset <= band + 1e-12).mean()),
            "band": band, "band_mean": band_mean,
            "off_band_mean": float(group.mutual_knn[~on_band].mean()) if (~on_band).any() else float("nan"),
            "chance": chance, "band_over_chance": band_mean / chance,
        })
    return pd.DataFrame(records, columns=SUMMARY_COLUMNS)


def _extract_texts(
    models: Sequence[DepthModel], corpus: Corpus, store_dir: Path, batch_size: int, progress: bool
) -> dict[str, list[np.ndarray]]:
    """Extract every layer of each model with its text-level rows; return each model's layers as float32."""
    from reprsim.extraction import extract
    from reprsim.store import ActivationStore

    store = ActivationStore(store_dir)
    layers: dict[str, list[np.ndarray]] = {}
    for model in models:
        (entry,) = extract(
            model.preset, corpus, store, rows=model.rows, names=[model.name], batch_size=batch_size, progress=progress
        )
        layers[model.name] = [entry.read_rows(layer, 0, entry.n_words) for layer in entry.layer_ids]
    return layers


def run_depth_alignment(
    config: DepthAlignmentConfig, out: Path, threads: int = 1, progress: bool = True
) -> DepthAlignmentResult:
    """Run section 4: extract the installed packaged models' text-level rows, compare all layer pairs.

    Parameters
    ----------
    config : DepthAlignmentConfig
        The run.
    out : Path
        Its folder (the activation store goes in ``out/store``; complete entries are reused).
    threads : int, default 1
        Torch CPU threads (restored afterwards).
    progress : bool, default True
        Show progress bars.

    Returns
    -------
    DepthAlignmentResult
        The layer pairs, best matches and per-pair summary.

    Raises
    ------
    FileNotFoundError
        If fewer than two of the models are installed.
    ValueError
        If the built-in corpus has fewer than ``config.texts`` sentences of at most ``max_words`` words.
    """
    models, skipped = installed_models(config)
    corpus = Corpus.builtin(config.texts, max_words=config.max_words)
    seconds: dict[str, float] = {}
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        representations = _extract_texts(models, corpus, out / "store", config.batch_size, progress)
        seconds["extraction"] = time.perf_counter() - start
        start = time.perf_counter()
        pairs = layer_pair_table(representations, config.k)
        seconds["mutual k-NN of every layer pair"] = time.perf_counter() - start
    finally:
        torch.set_num_threads(old_threads)
    rows = {m.name: m.rows for m in models}
    return DepthAlignmentResult(
        config=config,
        models=models,
        skipped=skipped,
        pairs=pairs,
        best_matches=best_match_table(pairs),
        summary=depth_summary(pairs, len(corpus), config.k, config.band, rows),
        seconds=seconds,
    )


def _number(value: float, digits: int = 3) -> str:
    """A table cell: the value, or "n/a" for NaN."""
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"


def depth_alignment_markdown(result: DepthAlignmentResult) -> str:
    """Section 4 as Markdown: the paper's claim, the setup, and the numbers beside it.

    Parameters
    ----------
    result : DepthAlignmentResult
        A run.

    Returns
    -------
    str
        The section.
    """
    config, summary = result.config, result.summary
    texts = int(summary.texts.iloc[0]) if len(summary) else config.texts
    chance = config.k / (texts - 1)
    pooling = ", ".join(f"{m.name} ({m.rows})" for m in result.models)
    lines = [
        "## 4. Layers at similar relative depths across models (Wolfram & Schein 2025, claim 2)",
        "",
        f"The paper's claim ({PAPER}): {PAPER_CLAIM}.",
        "",
        f"Here: {texts} texts of the built-in corpus, one row per text ({pooling}), mutual k-NN with k = "
        f"{config.k} over every layer pair of every two models (embeddings included, relative depth 0); chance "
        f"level k/(n-1) = {chance:.4f}; diagonal band |depth_a - depth_b| <= {config.band}.",
    ]
    if result.skipped:
        lines += ["", f"Not installed, left out: {', '.join(result.skipped)}."]
    lines += [
        "",
        "Spearman: of each layer of A's relative depth and its best match's in B (the claim: > 0; n/a when every "
        "best match lies at one depth). Offset: mean |depth of a layer - depth of its best match|. In band: "
        "share of A's layers whose best match lies in the band.",
        "",
        "| A | B | layers A x B | Spearman | offset | in band | band mean | off-band mean | chance | band / chance |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary.itertuples(index=False):
        lines.append(
            f"| {r.model_a} | {r.model_b} | {r.layers_a} x {r.layers_b} | {_number(r.spearman)} | "
            f"{_number(r.mean_depth_offset)} | {_number(r.best_in_band, 2)} | {_number(r.band_mean)} | "
            f"{_number(r.off_band_mean)} | {_number(r.chance, 4)} | {_number(r.band_over_chance, 1)} |"
        )
    positive = int((summary.spearman > 0).sum())
    above = int((summary.band_mean > summary.chance).sum())
    over_off = int((summary.band_mean > summary.off_band_mean).sum())
    n = len(summary)
    lines += [
        "",
        f"Measured: Spearman > 0 for {positive} of {n} ordered model pairs; band mean above chance for {above} of "
        f"{n}; band mean above the off-band mean for {over_off} of {n}.",
        "",
    ]
    return "\n".join(lines)


def write_depth_alignment(result: DepthAlignmentResult, out: Path) -> list[Path]:
    """Write section 4: depth_alignment.csv (summary), depth_alignment_pairs.csv, depth_alignment_best.csv, .md.

    Parameters
    ----------
    result : DepthAlignmentResult
        A run.
    out : Path
        The validation output folder (created if needed).

    Returns
    -------
    list of Path
        The files written.
    """
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "depth_alignment.csv": result.summary,
        "depth_alignment_pairs.csv": result.pairs,
        "depth_alignment_best.csv": result.best_matches,
    }
    written = []
    for name, frame in files.items():
        frame.to_csv(out / name, index=False)
        written.append(out / name)
    (out / "depth_alignment.md").write_text(depth_alignment_markdown(result), encoding="utf-8")
    return [*written, out / "depth_alignment.md"]


def run_and_write(config: DepthAlignmentConfig, out: Path, threads: int = 1, progress: bool = True) -> str:
    """Run section 4 (its store in ``out/depth-alignment``), write its CSVs and Markdown into `out`.

    Parameters
    ----------
    config : DepthAlignmentConfig
        The run.
    out : Path
        The validation output folder.
    threads : int, default 1
        Torch CPU threads.
    progress : bool, default True
        Show progress bars.

    Returns
    -------
    str
        The section's Markdown.

    Raises
    ------
    FileNotFoundError
        If fewer than two of the models are installed.
    """
    result = run_depth_alignment(config, out / "depth-alignment", threads=threads, progress=progress)
    write_depth_alignment(result, out)
    return depth_alignment_markdown(result)
