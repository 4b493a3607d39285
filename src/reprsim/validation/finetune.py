"""A fine-tuned model made here: MiniLM taught to tell sentences from copies with shuffled word order.

Section 3 of the validation needs a fine-tuned checkpoint and its base, and no fine-tuned BERT ships in a
package, so one is made offline from the built-in corpus. The task needs no annotation: half the sentences
have their words permuted (label 1), the rest are left intact (label 0). A linear head on the [CLS] vector
is trained with the encoder; only the encoder is saved (safetensors, with its tokenizer), so it loads like
any model folder. Training is seeded and deterministic on CPU, and the result is cached under the reprsim
cache folder, keyed by the base model's identity, the training configuration and the examples.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from reprsim.extraction.presets import cache_root, preset_folder, preset_identity, publish_folder
from reprsim.validation.train_common import deterministic_torch

RECORD = "finetune.json"
ENCODER_PRESETS = ("minilm", "mpnet")


@dataclass(frozen=True)
class FinetuneConfig:
    """What determines the fine-tuned model (all of it goes into its cache key).

    Attributes
    ----------
    base : {"minilm", "mpnet"}, default "minilm"
        The encoder preset to fine-tune. The head reads the first token, which sees the whole sentence only
        in a bidirectional encoder.
    train_sentences : int, default 1200
        Training examples (at least 1).
    heldout_sentences : int, default 200
        Held-out examples for the accuracy (at least 1).
    min_words : int, default 6
        Shortest usable sentence (at least 2: a shuffle needs two words).
    max_words : int, default 40
        Longest usable sentence.
    epochs : int, default 2
        Training epochs (at least 1).
    batch_size : int, default 16
        Sentences per minibatch (at least 1).
    learning_rate : float, default 5e-5
        AdamW learning rate (> 0).
    seed : int, default 0
        Seeds the labels, the shuffles, the head's initial weights and the minibatch order.

    Raises
    ------
    ValueError
        If `base` is not an encoder preset or a count or the learning rate is out of range.
    """

    base: str = "minilm"
    train_sentences: int = 1200
    heldout_sentences: int = 200
    min_words: int = 6
    max_words: int = 40
    epochs: int = 2
    batch_size: int = 16
    learning_rate: float = 5e-5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.base not in ENCODER_PRESETS:
            # The head reads the first token, which sees the whole sentence only in a bidirectional encoder.
            raise ValueError(f"FinetuneConfig.base must be an encoder preset {ENCODER_PRESETS}, got {self.base!r}")
        for name in ("train_sentences", "heldout_sentences", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"FinetuneConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.min_words < 2:
            raise ValueError(f"FinetuneConfig.min_words must be >= 2 (a shuffle needs two words), got {self.min_words}")
        if not self.learning_rate > 0:
            raise ValueError(f"FinetuneConfig.learning_rate must be > 0, got {self.learning_rate}")


@dataclass(frozen=True)
class WordOrderExample:
    """One example of the word-order task.

    Attributes
    ----------
    words : list of str
        The sentence's words, shuffled when `shuffled`.
    shuffled : bool
        The label: True (1) for a shuffled word order, False (0) for the original.
    """

    words: list[str]
    shuffled: bool


@dataclass(frozen=True)
class FinetunedModel:
    """Where the fine-tuned encoder lies, and how well it does its task (chance is 0.5).

    Attributes
    ----------
    folder : Path
        The model folder (safetensors encoder and tokenizer, loadable like any model folder).
    base : str
        The base preset.
    heldout_accuracy : float
        Held-out accuracy after fine-tuning.
    base_heldout_accuracy : float
        Held-out accuracy of the untrained head on the base encoder, before fine-tuning.
    train_loss : float
        Mean training loss over the last epoch's steps.
    config : FinetuneConfig
        The configuration it was made with.
    """

    folder: Path
    base: str
    heldout_accuracy: float
    base_heldout_accuracy: float
    train_loss: float
    config: FinetuneConfig


def shuffled_word_order_task(
    sentences: Sequence[Sequence[str]], n: int, min_words: int, seed: int
) -> list[WordOrderExample]:
    """Build the shuffled-word-order task from the first usable sentences.

    A seeded random half of the examples has its word order shuffled. A shuffle that happens to leave the
    sentence readable as it was (the permutation restores the order) is redrawn, and sentences whose words
    are all equal are not usable, so every label-1 example really differs from the original.

    Parameters
    ----------
    sentences : sequence of sequence of str
        The candidate sentences, in order.
    n : int
        The number of examples (exactly ``n // 2`` are shuffled).
    min_words : int
        Shortest usable sentence.
    seed : int
        The seed of the labels and the shuffles.

    Returns
    -------
    list of WordOrderExample
        The examples, from the first `n` usable sentences in order.

    Raises
    ------
    ValueError
        If fewer than `n` sentences are usable.
    """
    rng = np.random.default_rng(seed)
    usable = [list(s) for s in sentences if len(s) >= min_words and len(set(s)) > 1]
    if len(usable) < n:
        raise ValueError(f"the word-order task needs {n} sentences of >= {min_words} words, only {len(usable)} exist")
    examples = []
    labels = rng.permutation(np.arange(n) % 2 == 1)
    for words, shuffled in zip(usable[:n], labels, strict=True):
        if shuffled:
            permuted = list(words)
            while permuted == words:
                permuted = [words[i] for i in rng.permutation(len(words))]
            words = permuted
        examples.append(WordOrderExample(words=words, shuffled=bool(shuffled)))
    return examples


class CLSClassifier(nn.Module):
    """An encoder with a linear head on its first token's final hidden state.

    Parameters
    ----------
    encoder : torch.nn.Module
        A transformers encoder whose output has ``last_hidden_state``.
    width : int
        Its hidden size.
    classes : int, default 2
        The number of classes.
    """

    def __init__(self, encoder: nn.Module, width: int, classes: int = 2) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(width, classes)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        """Compute class logits, ``(batch, classes)``, from tokenizer outputs."""
        hidden = self.encoder(**inputs).last_hidden_state
        return self.head(hidden[:, 0])


def _batches(examples: Sequence[WordOrderExample], size: int) -> list[Sequence[WordOrderExample]]:
    """Cut the examples into consecutive batches."""
    return [examples[i : i + size] for i in range(0, len(examples), size)]


def _labels(batch: Sequence[WordOrderExample]) -> torch.Tensor:
    """Return a batch's labels as a long tensor."""
    return torch.tensor([e.shuffled for e in batch], dtype=torch.long)


def _encode(tokenizer: object, batch: Sequence[WordOrderExample]) -> dict[str, torch.Tensor]:
    """Tokenize a batch of pre-split sentences, padded, as PyTorch tensors."""
    return dict(
        tokenizer([e.words for e in batch], is_split_into_words=True, padding=True, return_tensors="pt")  # type: ignore[operator]
    )


def _accuracy(model: CLSClassifier, tokenizer: object, examples: Sequence[WordOrderExample], batch: int) -> float:
    """Compute the share of examples whose predicted label is right (the model is put in eval mode)."""
    model.eval()
    right = 0
    with torch.inference_mode():
        for chunk in _batches(examples, batch):
            predicted = model(**_encode(tokenizer, chunk)).argmax(-1)
            right += int((predicted == _labels(chunk)).sum())
    return right / len(examples)


def examples_sha256(examples: Sequence[WordOrderExample]) -> str:
    """Hash what the model is trained and evaluated on: every example's words and label, in order.

    Parameters
    ----------
    examples : sequence of WordOrderExample
        The examples.

    Returns
    -------
    str
        The sha256 hex digest.
    """
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps([example.words, example.shuffled]).encode() + b"\n")
    return digest.hexdigest()


def cache_folder(config: FinetuneConfig, data_sha256: str, cache: Path | None = None) -> Path:
    """Locate the cached fine-tuned model: a folder named by the hash of its base, configuration and data.

    Parameters
    ----------
    config : FinetuneConfig
        The configuration.
    data_sha256 : str
        The examples' hash (see `examples_sha256`).
    cache : Path, optional
        The cache root; default the reprsim cache folder (``$REPRSIM_CACHE``, else ``~/.cache/reprsim``).

    Returns
    -------
    Path
        ``<cache>/finetuned/<base>-wordorder-<16 hex digits>``; the base preset's identity, the whole
        configuration and `data_sha256` enter the hash.
    """
    key = json.dumps(
        {"base": preset_identity(config.base), "config": asdict(config), "data": data_sha256}, sort_keys=True
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return (cache_root() if cache is None else cache) / "finetuned" / f"{config.base}-wordorder-{digest}"


def finetune_word_order(
    config: FinetuneConfig,
    sentences: Sequence[Sequence[str]],
    threads: int = 1,
    cache: Path | None = None,
    progress: bool = True,
) -> FinetunedModel:
    """Fine-tune an encoder preset on the shuffled-word-order task built from some sentences.

    A linear head on the first token's vector is trained with the encoder (AdamW); only the encoder is
    saved, with its tokenizer, so it loads like any model folder. Training is seeded and deterministic on
    CPU. A finished model (its folder has a record) is reused; a folder without a record, left by an
    interrupted run, is deleted and the model trained again. The folder is written under a temporary name
    and moved into place, so it is never seen half written.

    Parameters
    ----------
    config : FinetuneConfig
        The base preset, the task sizes and the schedule.
    sentences : sequence of sequence of str
        The source sentences; those longer than ``config.max_words`` are skipped. The first
        ``train_sentences`` usable sentences train and the next ``heldout_sentences`` measure accuracy:
        pass sentences that are not in the corpus the models will be compared on.
    threads : int, default 1
        Torch CPU threads.
    cache : Path, optional
        The cache root (see `cache_folder`), which also holds the base preset.
    progress : bool, default True
        Show a progress bar over training steps.

    Returns
    -------
    FinetunedModel
        The model folder and its accuracies.

    Raises
    ------
    ValueError
        If there are not enough usable sentences, or a cached model's record does not match the
        configuration and data (delete the folder to retrain).
    FileNotFoundError
        If the base preset's package is not installed.
    """
    examples = shuffled_word_order_task(
        [s for s in sentences if len(s) <= config.max_words],
        config.train_sentences + config.heldout_sentences,
        config.min_words,
        config.seed,
    )
    data_sha256 = examples_sha256(examples)
    target = cache_folder(config, data_sha256, cache)
    if (target / RECORD).is_file():
        return _load_record(target, config, data_sha256)
    if target.exists():  # no record: left by an interrupted or older run, so it is not trusted
        shutil.rmtree(target)
    from transformers import AutoModel, AutoTokenizer

    train, heldout = examples[: config.train_sentences], examples[config.train_sentences :]
    base_folder = preset_folder(config.base, cache)
    tokenizer = AutoTokenizer.from_pretrained(str(base_folder))
    with deterministic_torch(config.seed, threads):
        encoder = AutoModel.from_pretrained(str(base_folder), dtype=torch.float32)
        model = CLSClassifier(encoder, int(encoder.config.hidden_size))
        base_accuracy = _accuracy(model, tokenizer, heldout, config.batch_size)
        optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
        order = np.random.default_rng(config.seed + 1)
        losses: list[float] = []
        per_epoch = len(_batches(train, config.batch_size))
        bar = tqdm(
            total=config.epochs * per_epoch,
            desc=f"fine-tune {config.base} (word order)",
            unit="step",
            disable=not progress,
        )
        for _ in range(config.epochs):
            model.train()
            shuffled = [train[i] for i in order.permutation(len(train))]
            for chunk in _batches(shuffled, config.batch_size):
                loss = nn.functional.cross_entropy(model(**_encode(tokenizer, chunk)), _labels(chunk))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                losses.append(loss.item())
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        bar.close()
        heldout_accuracy = _accuracy(model, tokenizer, heldout, config.batch_size)
    result = FinetunedModel(
        folder=target,
        base=config.base,
        heldout_accuracy=heldout_accuracy,
        base_heldout_accuracy=base_accuracy,
        train_loss=float(np.mean(losses[-per_epoch:])),
        config=config,
    )
    _save(model.encoder, tokenizer, result, data_sha256, target)
    return result


def _save(encoder: nn.Module, tokenizer: object, result: FinetunedModel, data_sha256: str, target: Path) -> None:
    """Write encoder + tokenizer + record into a temporary folder, then move it into place atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        encoder.save_pretrained(tmp)  # type: ignore[operator]
        tokenizer.save_pretrained(tmp)  # type: ignore[attr-defined]
        record = {
            "base": result.base,
            "heldout_accuracy": result.heldout_accuracy,
            "base_heldout_accuracy": result.base_heldout_accuracy,
            "train_loss": result.train_loss,
            "config": asdict(result.config),
            "data_sha256": data_sha256,
        }
        (tmp / RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish_folder(tmp, target)


def _load_record(folder: Path, config: FinetuneConfig, data_sha256: str) -> FinetunedModel:
    """Read a cached model's record, checking it was made with this configuration and data."""
    record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    if record.get("config") != asdict(config) or record.get("data_sha256") != data_sha256:
        raise ValueError(
            f"{folder}: the cached fine-tuned model was made with another configuration or other sentences; "
            "delete the folder to retrain"
        )
    return FinetunedModel(
        folder=folder,
        base=str(record["base"]),
        heldout_accuracy=float(record["heldout_accuracy"]),
        base_heldout_accuracy=float(record["base_heldout_accuracy"]),
        train_loss=float(record["train_loss"]),
        config=config,
    )
