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
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from reprsim.corpus import Corpus
from reprsim.extraction.presets import INSTALL_COMMAND, require_installed
from reprsim.validation.depth_config import (
    DEPTH_MODELS,
    DepthAlignmentConfig,
    DepthAlignmentResult,
    DepthModel,
)
from reprsim.validation.depth_markdown import PAPER, PAPER_CLAIM, depth_alignment_markdown, write_depth_alignment
from reprsim.validation.depth_measures import (
    PAIR_COLUMNS,
    SUMMARY_COLUMNS,
    best_match_table,
    both_directions,
    depth_spearman,
    depth_summary,
    layer_pair_table,
    relative_depths,
)

__all__ = [
    "DEPTH_MODELS",
    "PAIR_COLUMNS",
    "PAPER",
    "PAPER_CLAIM",
    "SUMMARY_COLUMNS",
    "DepthAlignmentConfig",
    "DepthAlignmentResult",
    "DepthModel",
    "best_match_table",
    "both_directions",
    "depth_alignment_markdown",
    "depth_spearman",
    "depth_summary",
    "installed_models",
    "layer_pair_table",
    "relative_depths",
    "run_and_write",
    "run_depth_alignment",
    "write_depth_alignment",
]


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
