"""One attention layer's maps checked and fitted once: map validation and `AttentionFit`.

Inputs are sequences (or one-pass iterables) of per-sentence word-level attention maps, each an array of
shape (heads, T, T) whose rows are distributions. `fit_attention` reads one layer's maps one sentence at a
time, checks each (numeric, (heads, T, T), finite, rows non-negative and summing to 1) and turns them into
an `AttentionFit`: the maps flattened over all sentences into an (H, N) float64 array, ``N = sum of T_s^2``,
plus per-head constants, in the form its measure kind is scored from (`reprsim.measures.attention_score`).
`fit_pair` fits two layers read together, checking that they describe the same sentences.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from reprsim.arrays import CONSTANT_RTOL

AttentionKind = Literal["js", "pearson", "cka"]
ATTENTION_KINDS: tuple[AttentionKind, ...] = ("js", "pearson", "cka")
# The registry's attention measures and the profile kind each is scored from.
MEASURE_KINDS: dict[str, AttentionKind] = {"attention_js": "js", "attention_pearson": "pearson",
                                           "attention_cka": "cka"}


def _dtype_eps(a: Any) -> float:
    """Machine epsilon of the stored dtype (float16 maps sum to 1 only to ~1e-3)."""
    dtype = a.dtype if isinstance(a, torch.Tensor) else np.asarray(a).dtype
    if isinstance(dtype, torch.dtype):
        return float(torch.finfo(dtype).eps) if dtype.is_floating_point else 0.0
    return float(np.finfo(dtype).eps) if np.issubdtype(dtype, np.floating) else 0.0


def _attention_map(a: Any, side: str, sentence: int, device: torch.device | None) -> torch.Tensor:
    """Validate one sentence's (heads, T, T) map and return it as float64 on `device`."""
    # Rows must be non-negative and sum to 1 (tolerance max(1e-4, T * eps of the stored dtype)); errors name
    # the side, the sentence and the first offending head and query word.
    where = f"{side}, sentence {sentence}"
    if isinstance(a, torch.Tensor):
        t = a.detach()
    else:
        arr = np.asarray(a)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"attention ({where}): expected a numeric array, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.ndim != 3 or t.shape[1] != t.shape[2] or 0 in t.shape:
        raise ValueError(
            f"attention ({where}): expected a (heads, T, T) map with T >= 1, got shape {tuple(t.shape)}"
        )
    tol = max(1e-4, t.shape[-1] * _dtype_eps(a))
    t = t.to(device=device, dtype=torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"attention ({where}): contains NaN or Inf")
    negative = t < 0
    if bool(negative.any()):
        h, i, _ = (int(v) for v in torch.nonzero(negative)[0])
        raise ValueError(f"attention ({where}): negative weight in head {h}, query word {i}; rows must be "
                         "distributions")
    off = (t.sum(dim=-1) - 1.0).abs() > tol
    if bool(off.any()):
        h, i = (int(v) for v in torch.nonzero(off)[0])
        total = float(t[h, i].sum())
        raise ValueError(f"attention ({where}): row of head {h}, query word {i} sums to {total:.6g}, not 1; "
                         "rows must be distributions (renormalise after dropping special tokens)")
    return t


_END = object()  # marks an exhausted iterator (a sentence map is never this object)


def _device_of(a: Any) -> torch.device:
    """The device of a torch map; CPU for anything else."""
    return a.device if isinstance(a, torch.Tensor) else torch.device("cpu")


def _sentence_pairs(A: Iterable[Any], B: Iterable[Any]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Validated (a_s, b_s) float64 pairs, one sentence at a time, checking counts, T and head counts."""
    if isinstance(A, Sized) and isinstance(B, Sized) and len(A) != len(B):
        raise ValueError(f"attention: A has {len(A)} sentences and B has {len(B)}; they must be the same "
                         "sentences")
    it_b = iter(B)
    heads_a = heads_b = -1
    count = 0
    device: torch.device | None = None
    for s, raw_a in enumerate(A):
        try:
            raw_b = next(it_b)
        except StopIteration:
            raise ValueError(f"attention: B ended after {s} sentences but A has more") from None
        if device is None:
            device = _device_of(raw_a)
        a = _attention_map(raw_a, "A", s, device)
        b = _attention_map(raw_b, "B", s, device)
        if a.shape[-1] != b.shape[-1]:
            raise ValueError(f"attention: sentence {s} has {a.shape[-1]} words in A but {b.shape[-1]} in B")
        if s == 0:
            heads_a, heads_b = a.shape[0], b.shape[0]
        elif (a.shape[0], b.shape[0]) != (heads_a, heads_b):
            raise ValueError(f"attention: sentence {s} has {a.shape[0]} heads in A and {b.shape[0]} in B, "
                             f"but sentence 0 had {heads_a} and {heads_b}")
        count += 1
        yield a, b
    if next(it_b, _END) is not _END:
        raise ValueError(f"attention: A ended after {count} sentences but B has more")
    if count == 0:
        raise ValueError("attention: no sentences given")


def _unit_centred_rows(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows centred and scaled to unit norm (zero for constant rows), and the mask of rows that vary."""
    z = a - a.mean(dim=-1, keepdim=True)
    norms = z.norm(dim=-1)
    valid = norms > CONSTANT_RTOL * a.abs().amax(dim=-1) * math.sqrt(a.shape[-1])
    z = z / torch.where(valid, norms, torch.ones_like(norms))[..., None]
    return z * valid[..., None], valid


@dataclass(frozen=True)
class AttentionFit:
    """One attention layer's per-layer work for one measure kind, reusable against any other layer.

    Made by `fit_attention`; two fits of one kind are compared with `score_attention` (or
    `score_attention_heads`).

    Parameters
    ----------
    kind
        ``"js"``, ``"pearson"`` or ``"cka"``.
    lengths
        Words per sentence; two fits must describe the same sentences.
    entries
        (heads, N) float64 over every (sentence, query i, key j): the weights (js); each row centred and
        scaled to unit norm, constant rows zeroed (pearson); or each head centred over all entries (cka).
    head_terms
        js: (heads,), ``0.5 * (sum a log a + ln 2 * sum a)`` per head; cka: the Frobenius norm of the
        centred head Gram matrix (0-d); pearson: unused (empty).
    valid_rows
        pearson only: (heads, rows), 1.0 where a (sentence, query) row varies, else 0.0.
    support
        js only: (N,), True where some head's weight is non-zero (entries zero on both sides add nothing:
        a causal pair skips half of them).
    """

    kind: AttentionKind
    lengths: tuple[int, ...]
    entries: torch.Tensor
    head_terms: torch.Tensor
    valid_rows: torch.Tensor | None = None
    support: torch.Tensor | None = None

    @property
    def heads(self) -> int:
        """Attention heads of the layer."""
        return int(self.entries.shape[0])

    @property
    def n_rows(self) -> int:
        """(sentence, query word) rows: the words of the sentences."""
        return sum(self.lengths)

    @property
    def nbytes(self) -> int:
        """Bytes the fit's tensors hold."""
        extra = sum(t.numel() * t.element_size() for t in (self.valid_rows, self.support) if t is not None)
        return self.entries.numel() * self.entries.element_size() + extra


def attention_fit_bytes(heads: int, lengths: Iterable[int], kind: AttentionKind) -> int:
    """Bytes an `AttentionFit` of this shape holds (to tile all-pairs work under a memory budget).

    Parameters
    ----------
    heads
        Attention heads of the layer.
    lengths
        Words per sentence.
    kind
        ``"js"``, ``"pearson"`` or ``"cka"``.

    Returns
    -------
    int
        The bytes.
    """
    lengths = list(lengths)
    n_entries = sum(t * t for t in lengths)
    extra = {"pearson": 8 * heads * sum(lengths), "js": n_entries, "cka": 0}[kind]
    return 8 * heads * n_entries + extra


class _AttentionFitBuilder:
    """Accumulates one layer's validated sentence maps into an AttentionFit (input read once, in order)."""

    def __init__(self, kind: AttentionKind, name: str) -> None:
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"attention: kind must be one of {ATTENTION_KINDS}, got {kind!r}")
        self.kind, self.name = kind, name
        self.lengths: list[int] = []
        self.parts: list[torch.Tensor] = []
        self.valid: list[torch.Tensor] = []

    def add(self, a: torch.Tensor) -> None:
        """Add one validated float64 (heads, T, T) map; head counts must not change between sentences."""
        if self.parts and a.shape[0] != self.parts[0].shape[0]:
            raise ValueError(f"attention ({self.name}): sentence {len(self.lengths)} has {a.shape[0]} heads "
                             f"but sentence 0 had {self.parts[0].shape[0]}")
        self.lengths.append(int(a.shape[-1]))
        if self.kind == "pearson":
            z, valid = _unit_centred_rows(a)
            self.parts.append(z.reshape(a.shape[0], -1))
            self.valid.append(valid.to(torch.float64))
        else:
            self.parts.append(a.reshape(a.shape[0], -1))

    def finish(self) -> AttentionFit:
        """The fit of every map added (the buffered parts are released)."""
        if not self.parts:
            raise ValueError(f"attention ({self.name}): no sentences given")
        entries = torch.cat(self.parts, dim=1)
        self.parts = []
        lengths = tuple(self.lengths)
        if self.kind == "pearson":
            return AttentionFit("pearson", lengths, entries, entries.new_empty(0), torch.cat(self.valid, dim=1))
        if self.kind == "js":
            terms = 0.5 * (torch.xlogy(entries, entries).sum(dim=1) + math.log(2.0) * entries.sum(dim=1))
            return AttentionFit("js", lengths, entries, terms, support=(entries > 0).any(dim=0))
        varies = bool((entries.amax(dim=1) > entries.amin(dim=1)).any())
        entries -= entries.mean(dim=1, keepdim=True)
        norm = torch.linalg.matrix_norm(entries @ entries.T) if varies else entries.new_zeros(())
        return AttentionFit("cka", lengths, entries, norm)


def fit_attention(maps: Iterable[Any], kind: AttentionKind, *, name: str = "A") -> AttentionFit:
    """Fit one layer's per-sentence attention maps once for one measure kind.

    ``score_attention(fit_attention(A, k), fit_attention(B, k))`` equals the per-pair measure on ``(A, B)``.
    The maps are read once, in order, one sentence at a time.

    Parameters
    ----------
    maps
        The layer's per-sentence (heads, T, T) maps (numpy or torch; the first map's device is used). Each
        row must be a distribution: non-negative weights summing to 1 within ``max(1e-4, T * eps)`` of the
        stored dtype.
    kind
        ``"js"``, ``"pearson"`` or ``"cka"``.
    name
        What the error messages call the layer.

    Returns
    -------
    AttentionFit
        The layer's fit.

    Raises
    ------
    ValueError
        Naming `name`, the sentence and (for bad rows) the first offending head and query word: for an
        unknown `kind`, no sentences, a map that is not numeric, not (heads, T, T) with T >= 1 or not finite,
        negative weights, rows that do not sum to 1, or a head count that changes between sentences.
    """
    builder = _AttentionFitBuilder(kind, name)
    device: torch.device | None = None
    for s, raw in enumerate(maps):
        device = _device_of(raw) if device is None else device
        builder.add(_attention_map(raw, name, s, device))
    return builder.finish()


def fit_pair(A: Iterable[Any], B: Iterable[Any], kind: AttentionKind) -> tuple[AttentionFit, AttentionFit]:
    """Fits of two layers read together sentence by sentence, checked to describe the same sentences.

    Parameters
    ----------
    A, B
        Per-sentence (heads, T, T) maps of the two layers, the same sentences in the same order (the first
        map of A decides the device).
    kind
        ``"js"``, ``"pearson"`` or ``"cka"``.

    Returns
    -------
    tuple of (AttentionFit, AttentionFit)
        The fits of A and of B.

    Raises
    ------
    ValueError
        For an unknown `kind`; for maps that are not distributions or do not match between A and B (counts
        of sentences, words or heads), naming the side and the sentence.
    """
    builder_a, builder_b = _AttentionFitBuilder(kind, "A"), _AttentionFitBuilder(kind, "B")
    for a, b in _sentence_pairs(A, B):
        builder_a.add(a)
        builder_b.add(b)
    return builder_a.finish(), builder_b.finish()
