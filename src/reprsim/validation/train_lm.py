"""A small pre-LayerNorm transformer language model with a word-level vocabulary, trained deterministically.

It is trained for next-word prediction on sentences of a `Corpus`; its representations are every layer's
activations on held-out sentences, one row per word. Training is deterministic (see
`reprsim.validation.train_common.deterministic_torch`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from reprsim.validation.train_common import TrainedNetwork, deterministic_torch

# Index of the padding token and the unknown-word token in every `Vocabulary`.
PAD_ID = 0
UNK_ID = 1


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
