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

    Parameters
    ----------
    seed : int
        The torch seed inside the block.
    threads : int
        The torch CPU thread count inside the block (at least 1); a fixed count keeps reductions
        reproducible.

    Yields
    ------
    None
        Control, inside the block.

    Raises
    ------
    ValueError
        If `threads` < 1.
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

    Attributes
    ----------
    setting : str
        The setting that labels it in results tables (e.g. ``"digits-mlp"``).
    seed : int
        The seed that set its initial weights and minibatch order.
    layers : list of numpy.ndarray
        ``layers[k]`` is an (examples or words) x width float32 matrix; row r is the same input in every
        network of a setting, so layers of different seeds are row-aligned.
    layer_ids : list of int
        The index of each layer (1..L for the MLP's hidden layers, 0..L for the LM, 0 = embeddings).
    metric_name : str
        What `metric` is (``"test accuracy"`` or ``"held-out perplexity"``).
    metric : float
        The trained network's held-out score.
    state : dict of str to torch.Tensor
        A copy of the trained weights (``state_dict``).
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
    """Shape and training schedule of the digits classifier.

    Attributes
    ----------
    hidden_layers : int, default 6
        The number of hidden layers (at least 1).
    width : int, default 128
        Units per hidden layer (at least 1).
    batch_norm : bool, default True
        Batch normalisation after each hidden Linear layer (see `DigitsMLP`).
    epochs : int, default 30
        Training epochs.
    batch_size : int, default 64
        Minibatch size.
    lr : float, default 1e-3
        Adam learning rate.
    test_fraction : float, default 0.4
        The held-out share of the digits, in (0, 1).
    split_seed : int, default 0
        The seed of the train / held-out split (the same for every network seed).
    """

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
    """Standardised digits features, split once, identically for every seed.

    Attributes
    ----------
    x_train, y_train : torch.Tensor
        Training features (float32, ``(n_train, 64)``) and class labels (int64).
    x_test, y_test : torch.Tensor
        Held-out features and labels.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits_split(test_fraction: float, split_seed: int) -> DigitsData:
    """Split scikit-learn's digits into train and held-out parts, stratified by class.

    Features are standardised with the training part's statistics (constant pixels keep scale 1) so that a
    plain ReLU MLP trains without normalisation layers.

    Parameters
    ----------
    test_fraction : float
        The held-out share, in (0, 1).
    split_seed : int
        The seed of the split.

    Returns
    -------
    DigitsData
        The standardised split.

    Raises
    ------
    ValueError
        If `test_fraction` is not in (0, 1).
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
    """A deep narrow digits classifier: Linear(+BatchNorm)+ReLU blocks of equal width, then a linear readout.

    Batch normalisation is on by default: without it deep narrow ReLU networks train poorly on digits and
    their deeper layers collapse into one block of near-identical representations (Kornblith et al.'s
    "pathological depth"), which is a property of the training, not of the measures.

    Parameters
    ----------
    n_inputs : int
        The number of input features.
    config : MLPConfig
        The shape: `MLPConfig.hidden_layers` blocks of `MLPConfig.width` units, readout to 10 classes.

    Raises
    ------
    ValueError
        If the config asks for no hidden layer or zero width.
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
        """Compute the post-ReLU output of every hidden layer (the logits are excluded, as in Kornblith et al.).

        Parameters
        ----------
        x : torch.Tensor
            A batch of inputs, ``(batch, n_inputs)``.

        Returns
        -------
        list of torch.Tensor
            One ``(batch, width)`` tensor per hidden layer, input side first.
        """
        states = []
        for layer in self.hidden:
            x = layer(x)
            states.append(x)
        return states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the class logits, ``(batch, 10)``."""
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

    Training is deterministic (see `deterministic_torch`): the same seed gives bit-identical weights.

    Parameters
    ----------
    data : DigitsData
        The split (see `load_digits_split`).
    config : MLPConfig
        The shape and schedule.
    seed : int
        The seed.
    threads : int, default 1
        Torch CPU threads.
    progress : bool, default True
        Show a progress bar over epochs.
    setting : str, default "digits-mlp"
        The label of the network in results tables.

    Returns
    -------
    TrainedNetwork
        The hidden layers' activations on the held-out digits (layer ids 1..L) and the test accuracy.
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
    """Shape and training schedule of the word-level language model.

    Attributes
    ----------
    n_layers : int, default 4
        Transformer blocks.
    d_model : int, default 64
        Residual stream width (divisible by `n_heads`).
    n_heads : int, default 4
        Attention heads per block.
    epochs : int, default 8
        Training epochs.
    batch_size : int, default 32
        Sentences per minibatch.
    lr : float, default 3e-3
        Peak AdamW learning rate of the one-cycle schedule.
    min_count : int, default 2
        Training-set occurrences a word needs to enter the vocabulary.
    max_words : int, default 40
        Sentences are cut to this many words (the model's context length).
    heldout_sentences : int, default 200
        Sentences held out for the activations and the perplexity.
    split_seed : int, default 0
        The seed that chooses the held-out sentences.
    """

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
    """A word vocabulary: lower-cased words seen at least ``min_count`` times in the training sentences.

    Other words map to ``<unk>`` (id UNK_ID = 1); id PAD_ID = 0 is ``<pad>``. ``len(vocab)`` is the number
    of ids.

    Attributes
    ----------
    words : tuple of str
        ``("<pad>", "<unk>", *sorted kept words)``; a word's id is its position.
    """

    words: tuple[str, ...]

    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]], min_count: int) -> Vocabulary:
        """Build the vocabulary from training sentences only, so held-out words never leak into it.

        Parameters
        ----------
        sentences : sequence of sequence of str
            The training sentences.
        min_count : int
            Occurrences (lower-cased) a word needs to be kept.

        Returns
        -------
        Vocabulary
            The vocabulary, kept words sorted.
        """
        counts = Counter(w.lower() for s in sentences for w in s)
        kept = sorted(w for w, c in counts.items() if c >= min_count)
        return cls(words=("<pad>", "<unk>", *kept))

    @cached_property
    def index(self) -> dict[str, int]:
        """Word -> id lookup, built once per vocabulary."""
        return {w: i for i, w in enumerate(self.words)}

    def encode(self, sentence: Sequence[str]) -> list[int]:
        """Map words (lower-cased) to ids, unknown words to UNK_ID.

        Parameters
        ----------
        sentence : sequence of str
            The words.

        Returns
        -------
        list of int
            Their ids.
        """
        return [self.index.get(w.lower(), UNK_ID) for w in sentence]

    def __len__(self) -> int:
        return len(self.words)


@dataclass(frozen=True)
class LMData:
    """Token ids of the training and held-out sentences (each 2 to ``max_words`` words long).

    Attributes
    ----------
    vocab : Vocabulary
        The vocabulary, built on the training sentences.
    train : list of list of int
        The training sentences' ids.
    heldout : list of list of int
        The held-out sentences' ids, in corpus order.
    """

    vocab: Vocabulary
    train: list[list[int]]
    heldout: list[list[int]]


def split_lm_sentences(sentences: Sequence[Sequence[str]], config: LMConfig) -> LMData:
    """Split sentences into training and held-out ones and build the vocabulary on the training ones.

    Sentences shorter than 2 words carry no next-word target and are dropped; longer ones are cut to
    ``config.max_words`` to bound the attention cost. ``config.heldout_sentences`` sentences, chosen by
    ``config.split_seed``, are held out.

    Parameters
    ----------
    sentences : sequence of sequence of str
        The corpus sentences.
    config : LMConfig
        The split and vocabulary options.

    Returns
    -------
    LMData
        The encoded split.

    Raises
    ------
    ValueError
        If no more than ``heldout_sentences`` sentences have at least 2 words.
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
    """A pre-LayerNorm transformer block: causal self-attention and an MLP, each with a residual connection.

    Parameters
    ----------
    d_model : int
        The residual stream width.
    n_heads : int
        Attention heads; must divide `d_model`.

    Raises
    ------
    ValueError
        If `n_heads` does not divide `d_model`.
    """

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
        """Apply the block to a ``(batch, words, d_model)`` residual stream."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.n_heads, d // self.n_heads).unbind(2)
        # Right padding plus a causal mask: real words never attend to the padding after them.
        att = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class WordLM(nn.Module):
    """A word-level transformer LM: token + learned position embeddings, blocks, final LayerNorm, tied output.

    Weights start from N(0, 0.02) (GPT-2 style), biases from zero.

    Parameters
    ----------
    vocab_size : int
        The number of word ids.
    config : LMConfig
        The shape (`LMConfig.n_layers` blocks of width `LMConfig.d_model`, context `LMConfig.max_words`).
    """

    def __init__(self, vocab_size: int, config: LMConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, config.d_model)
        self.position = nn.Embedding(config.max_words, config.d_model)
        self.blocks = nn.ModuleList(Block(config.d_model, config.n_heads) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.apply(_small_init)

    def hidden_states(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """Compute the residual stream after the embeddings (layer 0) and after each block (layers 1..L).

        Parameters
        ----------
        ids : torch.Tensor
            Right-padded word ids, ``(batch, words)``, at most ``max_words`` words.

        Returns
        -------
        list of torch.Tensor
            L + 1 tensors of shape ``(batch, words, d_model)``.
        """
        positions = torch.arange(ids.shape[1])
        x = self.embed(ids) + self.position(positions)[None]
        states = [x]
        for block in self.blocks:
            x = block(x)
            states.append(x)
        return states

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Compute next-word logits, ``(batch, words, vocab_size)``."""
        return self.ln_f(self.hidden_states(ids)[-1]) @ self.embed.weight.T


def _small_init(module: nn.Module) -> None:
    """Initialise GPT-2 style, N(0, 0.02), biases zero.

    With tied embeddings, unit-variance embeddings start the logits so large that the first epochs are
    spent undoing them.
    """
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def _pad_batch(sentences: Sequence[Sequence[int]]) -> torch.Tensor:
    """Right-pad token id lists with PAD_ID into one batch tensor."""
    longest = max(len(s) for s in sentences)
    out = torch.full((len(sentences), longest), PAD_ID, dtype=torch.long)
    for i, s in enumerate(sentences):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def _next_word_loss(model: WordLM, ids: torch.Tensor) -> torch.Tensor:
    """Compute the mean cross-entropy of predicting word t+1 from words <= t, padding excluded."""
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

    AdamW (weight decay 0.01) with a one-cycle learning-rate schedule and gradient clipping at norm 1;
    training is deterministic (see `deterministic_torch`).

    Parameters
    ----------
    data : LMData
        The encoded split (see `split_lm_sentences`).
    config : LMConfig
        The shape and schedule.
    seed : int
        The seed.
    threads : int, default 1
        Torch CPU threads.
    progress : bool, default True
        Show a progress bar over epochs.
    setting : str, default "word-lm"
        The label of the network in results tables.

    Returns
    -------
    TrainedNetwork
        The activations of every layer (ids 0..L, 0 = embeddings) on the held-out sentences, one row per
        word, sentences concatenated in corpus order (the same rows for every seed), and the held-out
        perplexity.

    Raises
    ------
    ValueError
        If `LMConfig.n_heads` does not divide `LMConfig.d_model`.
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
                loss = _next_word_loss(model, _pad_batch([data.train[i] for i in batch.tolist()]))
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimiser.step()
                schedule.step()
        model.eval()
        layers, perplexity = _lm_heldout_activations(model, data.heldout, config.batch_size)
    return TrainedNetwork(
        setting=setting,
        seed=seed,
        layers=layers,
        layer_ids=list(range(len(layers))),
        metric_name="held-out perplexity",
        metric=perplexity,
        state={k: v.detach().clone() for k, v in model.state_dict().items()},
    )


def _lm_heldout_activations(
    model: WordLM, heldout: Sequence[Sequence[int]], batch_size: int
) -> tuple[list[np.ndarray], float]:
    """Compute every layer's activations on the held-out words (padding dropped) and the held-out perplexity."""
    per_layer: list[list[np.ndarray]] = [[] for _ in range(len(model.blocks) + 1)]
    total_loss, total_targets = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(heldout), batch_size):
            chunk = heldout[start : start + batch_size]
            ids = _pad_batch(chunk)
            states = model.hidden_states(ids)
            for layer, state in enumerate(states):
                per_layer[layer].extend(state[i, : len(s)].numpy() for i, s in enumerate(chunk))
            n_targets = int((ids[:, 1:] != PAD_ID).sum())
            total_loss += float(_next_word_loss(model, ids)) * n_targets
            total_targets += n_targets
    return [np.concatenate(rows).astype(np.float32) for rows in per_layer], math.exp(total_loss / total_targets)
