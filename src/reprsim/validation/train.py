"""Small networks trained from scratch, deterministically, so that seeds are the only difference between them.

Two settings back the validation suite:

- a deep, narrow fully connected classifier on scikit-learn's digits (Kornblith et al. 2019 used deep narrow
  networks because that is where CCA-type measures fail to find corresponding layers);
- a small pre-LayerNorm transformer language model with a word-level vocabulary, trained for next-word
  prediction on sentences of a `Corpus`.

Training runs on CPU with deterministic algorithms, a fixed thread count and a forked global RNG, so a
seed fully determines the weights (the test suite checks bit-identity) and the caller's RNG state is left
as it was. Representations are each layer's activations on held-out inputs, one row per example (digits)
or per word (LM).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

# Index of the padding token and the unknown-word token in every `Vocabulary`.
PAD_ID = 0
UNK_ID = 1


@contextmanager
def deterministic_torch(seed: int, threads: int) -> Iterator[None]:
    """Seed torch and make every CPU kernel deterministic for the duration of the block.

    The global RNG is forked (restored on exit) and the deterministic-algorithms flag and thread count are put
    back, so training one network never changes what the caller's code does afterwards.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    old_threads = torch.get_num_threads()
    old_deterministic = torch.are_deterministic_algorithms_enabled()
    old_fill = torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
        # Deterministic mode also NaN-fills every new tensor, a debugging aid that costs ~10% of training
        # time here; no kernel used here reads memory it did not write, so it is switched off.
        torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
        try:
            yield
        finally:
            torch.utils.deterministic.fill_uninitialized_memory = old_fill  # type: ignore[attr-defined]
            torch.use_deterministic_algorithms(old_deterministic)
            torch.set_num_threads(old_threads)


@dataclass(frozen=True)
class TrainedNetwork:
    """One trained network and its layers' activations on the held-out inputs.

    `layers[k]` is an (examples or words) x width float32 matrix; row r is the same input in every network of
    a setting, so layers of different seeds are row-aligned.
    """

    setting: str
    seed: int
    layers: list[np.ndarray]
    layer_ids: list[int]
    metric_name: str
    metric: float
    state: dict[str, torch.Tensor]


# ----------------------------------------------------------------------------------------------------------
# Digits: deep narrow MLP
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MLPConfig:
    """Shape and training schedule of the digits classifier."""

    hidden_layers: int = 6
    width: int = 128
    batch_norm: bool = True
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    test_fraction: float = 0.4
    split_seed: int = 0


@dataclass(frozen=True)
class DigitsData:
    """Standardised digits features split once, identically for every seed."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits_split(test_fraction: float, split_seed: int) -> DigitsData:
    """Split scikit-learn's digits into train and held-out parts, stratified by class.

    Features are standardised with the training part's statistics (constant pixels keep scale 1) so that a
    plain ReLU MLP trains without normalisation layers.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=split_seed, stratify=y)
    mean = x_tr.mean(axis=0)
    std = x_tr.std(axis=0)
    std[std == 0] = 1.0
    return DigitsData(
        x_train=torch.from_numpy((x_tr - mean) / std).float(),
        y_train=torch.from_numpy(y_tr).long(),
        x_test=torch.from_numpy((x_te - mean) / std).float(),
        y_test=torch.from_numpy(y_te).long(),
    )


class DigitsMLP(nn.Module):
    """`hidden_layers` Linear(+BatchNorm)+ReLU blocks of equal width, then a linear readout to 10 classes.

    Batch normalisation is on by default: without it deep narrow ReLU networks train poorly on digits and
    their deeper layers collapse into one block of near-identical representations (Kornblith et al.'s
    "pathological depth"), which is a property of the training, not of the measures.
    """

    def __init__(self, n_inputs: int, config: MLPConfig) -> None:
        super().__init__()
        if config.hidden_layers < 1 or config.width < 1:
            raise ValueError(
                f"MLP needs hidden_layers >= 1 and width >= 1, got {config.hidden_layers} and {config.width}"
            )
        widths = [n_inputs] + [config.width] * config.hidden_layers
        self.hidden = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.BatchNorm1d(b) if config.batch_norm else nn.Identity(), nn.ReLU())
            for a, b in pairwise(widths)
        )
        self.readout = nn.Linear(config.width, 10)

    def hidden_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Post-ReLU output of every hidden layer (the logits are excluded, as in Kornblith et al.)."""
        states = []
        for layer in self.hidden:
            x = layer(x)
            states.append(x)
        return states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.hidden_states(x)[-1])


def train_digits_mlp(
    data: DigitsData,
    config: MLPConfig,
    seed: int,
    threads: int = 1,
    progress: bool = True,
    setting: str = "digits-mlp",
) -> TrainedNetwork:
    """Train one digits MLP; the seed sets both the initial weights and the minibatch order.

    `setting` labels the network in results tables.
    """
    with deterministic_torch(seed, threads):
        model = DigitsMLP(data.x_train.shape[1], config)
        optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
        order_rng = torch.Generator().manual_seed(seed)
        n = data.x_train.shape[0]
        for _ in tqdm(range(config.epochs), desc=f"{setting} seed {seed}", leave=False, disable=not progress):
            model.train()
            for batch in torch.randperm(n, generator=order_rng).split(config.batch_size):
                if len(batch) < 2:  # batch norm needs two rows; the order is seeded, so this is reproducible
                    continue
                loss = F.cross_entropy(model(data.x_train[batch]), data.y_train[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        model.eval()
        with torch.no_grad():
            states = model.hidden_states(data.x_test)
            accuracy = float((model.readout(states[-1]).argmax(1) == data.y_test).float().mean())
    return TrainedNetwork(
        setting=setting,
        seed=seed,
        layers=[s.numpy().copy() for s in states],
        layer_ids=list(range(1, len(states) + 1)),
        metric_name="test accuracy",
        metric=accuracy,
        state={k: v.detach().clone() for k, v in model.state_dict().items()},
    )


# ----------------------------------------------------------------------------------------------------------
# Word-level transformer language model
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LMConfig:
    """Shape and training schedule of the word-level language model."""

    n_layers: int = 4
    d_model: int = 64
    n_heads: int = 4
    epochs: int = 8
    batch_size: int = 32
    lr: float = 3e-3
    min_count: int = 2
    max_words: int = 40
    heldout_sentences: int = 200
    split_seed: int = 0


@dataclass(frozen=True)
class Vocabulary:
    """Lower-cased words seen at least `min_count` times in the training sentences; others map to <unk>."""

    words: tuple[str, ...]

    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]], min_count: int) -> Vocabulary:
        """Count words in training sentences only, so held-out words never leak into the vocabulary."""
        counts = Counter(w.lower() for s in sentences for w in s)
        kept = sorted(w for w, c in counts.items() if c >= min_count)
        return cls(words=("<pad>", "<unk>", *kept))

    @cached_property
    def index(self) -> dict[str, int]:
        """Word -> id lookup, built once per vocabulary."""
        return {w: i for i, w in enumerate(self.words)}

    def encode(self, sentence: Sequence[str]) -> list[int]:
        return [self.index.get(w.lower(), UNK_ID) for w in sentence]

    def __len__(self) -> int:
        return len(self.words)


@dataclass(frozen=True)
class LMData:
    """Token ids of training and held-out sentences (each at most `max_words` long, at least 2 words)."""

    vocab: Vocabulary
    train: list[list[int]]
    heldout: list[list[int]]


def split_lm_sentences(sentences: Sequence[Sequence[str]], config: LMConfig) -> LMData:
    """Hold out `heldout_sentences` sentences chosen by `split_seed`, build the vocabulary on the rest.

    Sentences shorter than 2 words carry no next-word target and are dropped; longer ones are cut to
    `max_words` to bound the attention cost.
    """
    usable = [list(s[: config.max_words]) for s in sentences if len(s) >= 2]
    if len(usable) <= config.heldout_sentences:
        raise ValueError(
            f"corpus has {len(usable)} sentences of >= 2 words; need more than heldout_sentences="
            f"{config.heldout_sentences}"
        )
    order = np.random.default_rng(config.split_seed).permutation(len(usable))
    heldout_idx = set(order[: config.heldout_sentences].tolist())
    train = [s for i, s in enumerate(usable) if i not in heldout_idx]
    heldout = [s for i, s in enumerate(usable) if i in heldout_idx]
    vocab = Vocabulary.build(train, config.min_count)
    return LMData(vocab=vocab, train=[vocab.encode(s) for s in train], heldout=[vocab.encode(s) for s in heldout])


class Block(nn.Module):
    """Pre-LayerNorm causal self-attention + MLP block with residual connections."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.n_heads, d // self.n_heads).unbind(2)
        # Right padding plus a causal mask: real words never attend to the padding after them.
        att = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class WordLM(nn.Module):
    """Token + learned position embeddings, `n_layers` blocks, final LayerNorm, tied output projection."""

    def __init__(self, vocab_size: int, config: LMConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, config.d_model)
        self.position = nn.Embedding(config.max_words, config.d_model)
        self.blocks = nn.ModuleList(Block(config.d_model, config.n_heads) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.apply(_small_init)

    def hidden_states(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """Residual stream after the embeddings (layer 0) and after each block (layers 1..L)."""
        positions = torch.arange(ids.shape[1])
        x = self.embed(ids) + self.position(positions)[None]
        states = [x]
        for block in self.blocks:
            x = block(x)
            states.append(x)
        return states

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.ln_f(self.hidden_states(ids)[-1]) @ self.embed.weight.T


def _small_init(module: nn.Module) -> None:
    """GPT-2 style N(0, 0.02) init: with tied embeddings, unit-variance embeddings start the logits so large
    that the first epochs are spent undoing them."""
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def pad_batch(sentences: Sequence[Sequence[int]]) -> torch.Tensor:
    """Right-pad token id lists with PAD_ID into one batch tensor."""
    longest = max(len(s) for s in sentences)
    out = torch.full((len(sentences), longest), PAD_ID, dtype=torch.long)
    for i, s in enumerate(sentences):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def next_word_loss(model: WordLM, ids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting word t+1 from words <= t, padding excluded."""
    logits = model(ids[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), ignore_index=PAD_ID)


def train_word_lm(
    data: LMData,
    config: LMConfig,
    seed: int,
    threads: int = 1,
    progress: bool = True,
    setting: str = "word-lm",
) -> TrainedNetwork:
    """Train one language model; the seed sets the initial weights and the minibatch order.

    Returns activations of every layer on the held-out sentences, one row per word, sentences concatenated
    in corpus order (the same rows for every seed), and the held-out perplexity.
    """
    with deterministic_torch(seed, threads):
        model = WordLM(len(data.vocab), config)
        optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
        steps = config.epochs * math.ceil(len(data.train) / config.batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=steps)
        order_rng = torch.Generator().manual_seed(seed)
        for _ in tqdm(range(config.epochs), desc=f"{setting} seed {seed}", leave=False, disable=not progress):
            model.train()
            for batch in torch.randperm(len(data.train), generator=order_rng).split(config.batch_size):
                loss = next_word_loss(model, pad_batch([data.train[i] for i in batch.tolist()]))
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimiser.step()
                schedule.step()
        model.eval()
        layers, perplexity = lm_heldout_activations(model, data.heldout, config.batch_size)
    return TrainedNetwork(
        setting=setting,
        seed=seed,
        layers=layers,
        layer_ids=list(range(len(layers))),
        metric_name="held-out perplexity",
        metric=perplexity,
        state={k: v.detach().clone() for k, v in model.state_dict().items()},
    )


def lm_heldout_activations(
    model: WordLM, heldout: Sequence[Sequence[int]], batch_size: int
) -> tuple[list[np.ndarray], float]:
    """Every layer's activations on the held-out words (padding dropped) and the held-out perplexity."""
    per_layer: list[list[np.ndarray]] = [[] for _ in range(len(model.blocks) + 1)]
    total_loss, total_targets = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(heldout), batch_size):
            chunk = heldout[start : start + batch_size]
            ids = pad_batch(chunk)
            states = model.hidden_states(ids)
            for layer, state in enumerate(states):
                per_layer[layer].extend(state[i, : len(s)].numpy() for i, s in enumerate(chunk))
            n_targets = int((ids[:, 1:] != PAD_ID).sum())
            total_loss += float(next_word_loss(model, ids)) * n_targets
            total_targets += n_targets
    return [np.concatenate(rows).astype(np.float32) for rows in per_layer], math.exp(total_loss / total_targets)
