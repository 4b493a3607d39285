"""Attention-level similarity between two layers (Wu et al. 2020).

Inputs ``A`` and ``B`` are sequences (or one-pass iterables, such as
`reprsim.store.StoreEntry.iter_attention`) of per-sentence word-level attention maps, each an array of
shape (heads, T, T) whose rows are distributions: row i of head h is where word i attends. ``A`` and ``B``
describe the same sentences in the same order, so sentence s has the same length ``T_s`` in both; the head
counts of ``A`` and ``B`` may differ.

- Head similarity by Jensen-Shannon: ``s(h, h') = 1 - mean over all (sentence, query word) of
  JS(a_h,i || b_h',i)``, natural log (floor ``1 - ln 2``).
- Pearson variant: ``s(h, h') = mean over (sentence, query word) of Pearson(a_h,i, b_h',i)``. A row that is
  constant (uniform attention, or a one-word sentence) has no correlation; such rows are left out of every
  pair they belong to, counted, and reported with a warning.
- Layer similarity: ``mean over heads h of A of max over heads h' of B of s(h, h')`` (directed, A -> B).
- Attention CKA: each head's maps flattened over all sentences (rows (sentence, i, j), columns heads), then
  linear CKA between the two layers' matrices (symmetric).

Per-layer fits (the attention analogue of `reprsim.engine.LinearFit` and
`reprsim.measures.sample_fit.SampleFit`): every measure first turns one layer's maps into an
`AttentionFit` (`fit_attention`), flattened over all sentences into an (H, N) float64 array,
``N = sum of T_s^2``, plus per-head constants; a pair of layers is then scored from the two fits
(`score_attention`) with a few matmuls (Pearson, CKA) or one vectorised pass over the entries (JS). The
per-pair functions below fit both sides and score them, so there is one implementation, and an all-pairs
comparison fits each layer once instead of once per pair. Input is read one sentence at a time; a fit holds
``8 * H * N`` bytes (200 sentences of T = 25 with 12 heads: 12 MB).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from reprsim.arrays import CONSTANT_RTOL

HeadSimilarity = Literal["js", "pearson"]
AttentionKind = Literal["js", "pearson", "cka"]
ATTENTION_KINDS: tuple[AttentionKind, ...] = ("js", "pearson", "cka")
# The registry's attention measures and the profile kind each is scored from.
MEASURE_KINDS: dict[str, AttentionKind] = {"attention_js": "js", "attention_pearson": "pearson",
                                           "attention_cka": "cka"}

# Elements of the (heads_B, entries) mixture block built at once in the JS pass; bounds its memory (32 MB).
MAX_PAIR_ELEMENTS = 1 << 22


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


def _check_fits(pa: AttentionFit, pb: AttentionFit) -> None:
    """Refuse two fits that differ in kind, sentences or device."""
    if pa.kind != pb.kind:
        raise ValueError(f"attention profiles of different kinds: {pa.kind!r} and {pb.kind!r}")
    if pa.lengths != pb.lengths:
        if len(pa.lengths) != len(pb.lengths):
            raise ValueError(f"attention: A has {len(pa.lengths)} sentences and B has {len(pb.lengths)}; they "
                             "must be the same sentences")
        s = next(s for s, (x, y) in enumerate(zip(pa.lengths, pb.lengths, strict=True)) if x != y)
        raise ValueError(f"attention: sentence {s} has {pa.lengths[s]} words in A but {pb.lengths[s]} in B")
    if pa.entries.device != pb.entries.device:
        raise ValueError(f"attention profiles on different devices: {pa.entries.device} and {pb.entries.device}")


def _mixture_sums(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(H, H') sums over entries e of S log S with S = a[h, e] + b[h', e] (0 log 0 = 0).

    The (H', block) mixture is built per head of A in blocks of entries under MAX_PAIR_ELEMENTS. On CPU this
    runs in numpy with two reused buffers: numpy's SIMD float64 log is ~4x faster than torch's, and reusing
    the buffers saves another ~3x over allocating them per head. Other devices use torch.xlogy.
    """
    block = max(1, MAX_PAIR_ELEMENTS // b.shape[0])
    n_entries = a.shape[1]
    if a.device.type != "cpu":
        out = torch.zeros(a.shape[0], b.shape[0], dtype=torch.float64, device=a.device)
        for start in range(0, n_entries, block):
            for h in range(a.shape[0]):
                s = a[h, start:start + block] + b[:, start:start + block]
                out[h] += torch.xlogy(s, s).sum(dim=1)
        return out
    an, bn = a.numpy(), b.numpy()
    sums = np.zeros((a.shape[0], b.shape[0]))
    mixture_buffer = np.empty((b.shape[0], min(block, n_entries)))
    log_buffer = np.empty_like(mixture_buffer)
    tiny = np.finfo(np.float64).tiny  # log(S + tiny) = log S for every normal S; S = 0 gives 0 * log(tiny) = 0
    for start in range(0, n_entries, block):
        stop = min(start + block, n_entries)
        mixture, log_mixture = mixture_buffer[:, : stop - start], log_buffer[:, : stop - start]
        for h in range(a.shape[0]):
            np.add(an[h, start:stop], bn[:, start:stop], out=mixture)
            np.add(mixture, tiny, out=log_mixture)
            np.log(log_mixture, out=log_mixture)
            sums[h] += np.einsum("ij,ij->i", mixture, log_mixture)
    return torch.from_numpy(sums)


def _js_head_sums(pa: AttentionFit, pb: AttentionFit) -> torch.Tensor:
    """(H, H') sums over every (sentence, query) row of JS(a_h,i || b_h',i), natural log.

    Summed over a row's keys, JS is a sum of elementwise terms f(a, b) = a/2 log(2a/(a+b)) + b/2 log(2b/(a+b))
    = [a log a + ln2 a]/2 + [b log b + ln2 b]/2 - (a+b) log(a+b)/2, so the total over all entries is
    head_terms_A[h] + head_terms_B[h'] - (sum of S log S, S = a_h + b_h')/2: one pass over the entries per
    head of A (`_mixture_sums`). Entries that are zero in every head of both layers (S = 0) are skipped.
    """
    a, b = pa.entries, pb.entries
    if pa.support is not None and pb.support is not None:
        union = pa.support | pb.support
        if not bool(union.all()):
            a, b = a[:, union], b[:, union]
    return pa.head_terms[:, None] + pb.head_terms[None, :] - 0.5 * _mixture_sums(a, b)


def _pearson_head_similarity(pa: AttentionFit, pb: AttentionFit) -> torch.Tensor:
    """Mean row correlation per head pair over the rows valid on both sides: one matmul of unit rows."""
    assert pa.valid_rows is not None and pb.valid_rows is not None
    total = pa.entries @ pb.entries.T  # constant rows are zero, so they add nothing
    counts = pa.valid_rows @ pb.valid_rows.T
    if bool((counts == 0).any()):
        h, g = (int(v) for v in torch.nonzero(counts == 0)[0])
        raise ValueError(f"attention_pearson: head {h} of A and head {g} of B share no query word whose "
                         "attention rows both vary; their correlation is undefined")
    excluded = int(pa.valid_rows.numel() - pa.valid_rows.sum()) + int(pb.valid_rows.numel() - pb.valid_rows.sum())
    if excluded:
        rows = pa.n_rows * (pa.heads + pb.heads)
        warnings.warn(f"attention_pearson: left out {excluded} of {rows} attention rows that are constant "
                      "(uniform or one-word); they have no correlation", UserWarning, stacklevel=2)
    return total / counts


def score_attention_heads(pa: AttentionFit, pb: AttentionFit) -> np.ndarray:
    """Head-by-head similarity ``s(h, h')`` from two fits of kind ``"js"`` or ``"pearson"``.

    See the module docstring for the two similarities.

    Parameters
    ----------
    pa, pb
        Fits of layers A and B of the same kind, on the same sentences and device.

    Returns
    -------
    numpy.ndarray
        (heads of A) x (heads of B), float64.

    Raises
    ------
    ValueError
        If the fits differ in kind, sentences or device; if they are ``"cka"`` fits (attention CKA compares
        whole layers); for pearson, if a pair of heads shares no query word whose rows both vary.

    Warns
    -----
    UserWarning
        pearson: when constant attention rows (uniform, or one-word sentences) were left out, with their count.
    """
    _check_fits(pa, pb)
    if pa.kind == "js":
        return (1.0 - _js_head_sums(pa, pb) / pa.n_rows).cpu().numpy()
    if pa.kind == "pearson":
        return _pearson_head_similarity(pa, pb).cpu().numpy()
    raise ValueError("attention CKA compares whole layers; it has no head x head similarity")


def score_attention(pa: AttentionFit, pb: AttentionFit) -> float:
    """Layer similarity A -> B from two fits of one kind.

    For ``"js"`` and ``"pearson"`` fits, the directed ``mean_h max_h' s(h, h')``; for ``"cka"`` fits, the
    symmetric linear CKA. Equals `attention_js`, `attention_pearson` or `attention_cka` on the maps.

    Parameters
    ----------
    pa, pb
        Fits of layers A and B of the same kind, on the same sentences and device.

    Returns
    -------
    float
        The layer similarity.

    Raises
    ------
    ValueError
        If the fits differ in kind, sentences or device; for cka, if every head of one layer has constant
        weights over all (sentence, i, j); for pearson, as `score_attention_heads`.

    Warns
    -----
    UserWarning
        pearson: when constant attention rows were left out.
    """
    _check_fits(pa, pb)
    if pa.kind != "cka":
        return _directed_layer_score(score_attention_heads(pa, pb))
    norm_a, norm_b = float(pa.head_terms), float(pb.head_terms)
    if norm_a == 0.0 or norm_b == 0.0:
        which = "A" if norm_a == 0.0 else "B"
        raise ValueError(f"attention_cka: every head of {which} has constant attention weights over all "
                         "(sentence, i, j); CKA is undefined")
    return float(torch.linalg.matrix_norm(pa.entries @ pb.entries.T)) ** 2 / (norm_a * norm_b)


def _fit_pair(A: Iterable[Any], B: Iterable[Any], kind: AttentionKind) -> tuple[AttentionFit, AttentionFit]:
    """Fits of A and B read together sentence by sentence, with the pairwise checks of _sentence_pairs."""
    builder_a, builder_b = _AttentionFitBuilder(kind, "A"), _AttentionFitBuilder(kind, "B")
    for a, b in _sentence_pairs(A, B):
        builder_a.add(a)
        builder_b.add(b)
    return builder_a.finish(), builder_b.finish()


def attention_head_similarity(A: Iterable[Any], B: Iterable[Any], kind: HeadSimilarity = "js") -> np.ndarray:
    """Head-by-head similarity matrix ``s(h, h')`` of two attention layers.

    Parameters
    ----------
    A, B
        Per-sentence (heads, T, T) maps of the two layers, the same sentences in the same order (see the
        module docstring).
    kind
        ``"js"``: ``1 - mean JS`` (natural log); ``"pearson"``: mean row-wise Pearson correlation.

    Returns
    -------
    numpy.ndarray
        (heads of A) x (heads of B), float64.

    Raises
    ------
    ValueError
        For an unknown `kind`; for maps that are not distributions or do not match between A and B (counts
        of sentences, words or heads), naming the side and the sentence; for pearson, if a pair of heads
        shares no query word whose rows both vary.

    Warns
    -----
    UserWarning
        pearson: when constant attention rows (uniform, or one-word sentences) were left out.
    """
    if kind not in ("js", "pearson"):
        raise ValueError(f"attention_head_similarity: kind must be 'js' or 'pearson', got {kind!r}")
    return score_attention_heads(*_fit_pair(A, B, kind))


def _directed_layer_score(similarity: np.ndarray) -> float:
    """Mean over heads of A of the best-matching head of B (the attention analogue of maxsim)."""
    return float(similarity.max(axis=1).mean())


def attention_js(A: Iterable[Any], B: Iterable[Any]) -> float:
    """Layer similarity A -> B from Jensen-Shannon head similarity (Wu et al. 2020).

    ``mean over heads h of A of max over heads h' of B of s(h, h')``, with
    ``s(h, h') = 1 - mean over (sentence, query word) of JS(a_h,i || b_h',i)`` in natural log, so the floor
    is ``1 - ln 2``; near-uniform attention scores high against everything. Directed; invariant to
    permuting heads.

    Parameters
    ----------
    A
        Per-sentence (heads, T, T) maps of the layer whose heads are matched.
    B
        The same sentences' maps of the layer searched for partners.

    Returns
    -------
    float
        The layer similarity, in [1 - ln 2, 1].

    Raises
    ------
    ValueError
        For maps that are not distributions or do not match between A and B (counts of sentences, words or
        heads), naming the side and the sentence.
    """
    return score_attention(*_fit_pair(A, B, "js"))


def attention_pearson(A: Iterable[Any], B: Iterable[Any]) -> float:
    """Layer similarity A -> B from row-wise Pearson head similarity (Wu et al. 2020).

    ``mean over heads h of A of max over heads h' of B of s(h, h')``, with ``s(h, h')`` the mean Pearson
    correlation of the two heads' attention rows over (sentence, query word). Constant rows (uniform
    attention, one-word sentences) have no correlation: they are left out of every pair they belong to and
    counted in a warning. Directed; invariant to permuting heads.

    Parameters
    ----------
    A
        Per-sentence (heads, T, T) maps of the layer whose heads are matched.
    B
        The same sentences' maps of the layer searched for partners.

    Returns
    -------
    float
        The layer similarity, in [-1, 1].

    Raises
    ------
    ValueError
        For maps that are not distributions or do not match between A and B, or when a pair of heads shares
        no query word whose rows both vary.

    Warns
    -----
    UserWarning
        When constant attention rows were left out.
    """
    return score_attention(*_fit_pair(A, B, "pearson"))


def attention_cka(A: Iterable[Any], B: Iterable[Any]) -> float:
    """Linear CKA between the layers' heads: rows are every (sentence, i, j) attention weight, columns heads.

    Each head is centred over all entries of all sentences together (an exact two-pass mean); the cross term
    is one (H, N) x (N, H') matmul. Symmetric; invariant to permuting heads.

    Parameters
    ----------
    A, B
        Per-sentence (heads, T, T) maps of the two layers, the same sentences in the same order.

    Returns
    -------
    float
        Linear CKA, in [0, 1].

    Raises
    ------
    ValueError
        For maps that are not distributions or do not match between A and B, or when every head of one
        layer has constant weights over all (sentence, i, j).
    """
    return score_attention(*_fit_pair(A, B, "cka"))
