"""Scoring two attention fits: head-by-head similarity and the layer similarity of each measure kind.

Two `AttentionFit`s of one kind (`reprsim.measures.attention_fit`) are scored with a few matmuls (Pearson,
CKA) or one vectorised pass over the entries (Jensen-Shannon), whatever the layers they came from, so an
all-pairs comparison fits each layer once and scores every pair from the fits.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .attention_fit import AttentionFit

# Elements of the (heads_B, entries) mixture block built at once in the JS pass; bounds its memory (32 MB).
MAX_PAIR_ELEMENTS = 1 << 22


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

    See `reprsim.measures.attention` for the two similarities.

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


def _directed_layer_score(similarity: np.ndarray) -> float:
    """Mean over heads of A of the best-matching head of B (the attention analogue of maxsim)."""
    return float(similarity.max(axis=1).mean())


