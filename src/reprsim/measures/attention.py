"""Attention-level similarity between two layers (Wu et al. 2020).

Inputs A and B are sequences (or one-pass iterables, such as `StoreEntry.iter_attention(layer)`) of
per-sentence word-level attention maps, each an array (heads, T, T) whose rows are distributions: row i of
head h is where word i attends. A and B describe the same sentences in the same order, so sentence s has
the same length T_s in both; the head counts of A and B may differ.

- Head similarity by Jensen-Shannon: s(h, h') = 1 - mean over all (sentence, query word) of
  JS(a_h,i || b_h',i), natural log (floor 1 - ln 2).
- Pearson variant: s(h, h') = mean over (sentence, query word) of Pearson(a_h,i, b_h',i). A row that is
  constant (uniform attention, or a one-word sentence) has no correlation; such rows are left out of every
  pair they belong to, counted, and reported with a warning.
- Layer similarity: mean over heads h of A of max over heads h' of B of s(h, h') (directed, A -> B).
- Attention CKA: each head's maps flattened over all sentences (rows (sentence, i, j), columns heads), then
  linear CKA between the two layers' matrices (symmetric).

Everything streams: one sentence at a time, never the whole corpus in memory.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import numpy as np
import torch

from reprsim.measures._input import CONSTANT_RTOL

HeadSimilarity = Literal["js", "pearson"]

# Elements of the (heads_A, heads_B, T, T) mixture tensor built at once; bounds memory for long sentences.
MAX_PAIR_ELEMENTS = 1 << 24


def _dtype_eps(a: Any) -> float:
    """Machine epsilon of the stored dtype (float16 maps sum to 1 only to ~1e-3)."""
    dtype = a.dtype if isinstance(a, torch.Tensor) else np.asarray(a).dtype
    if isinstance(dtype, torch.dtype):
        return float(torch.finfo(dtype).eps) if dtype.is_floating_point else 0.0
    return float(np.finfo(dtype).eps) if np.issubdtype(dtype, np.floating) else 0.0


def attention_map(a: Any, side: str, sentence: int, device: torch.device | None) -> torch.Tensor:
    """Validate one sentence's (heads, T, T) map and return it as float64 on `device`.

    Rows must be non-negative and sum to 1 (tolerance max(1e-4, T * eps of the stored dtype)); errors name
    the side, the sentence and the first offending head and query word.
    """
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
    return a.device if isinstance(a, torch.Tensor) else torch.device("cpu")


def sentence_pairs(A: Iterable[Any], B: Iterable[Any]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Validated (a_s, b_s) float64 pairs, one sentence at a time, checking counts, T and head counts."""
    if hasattr(A, "__len__") and hasattr(B, "__len__") and len(A) != len(B):  # type: ignore[arg-type]
        raise ValueError(f"attention: A has {len(A)} sentences and B has {len(B)}; they must be the same "  # type: ignore[arg-type]
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
        a = attention_map(raw_a, "A", s, device)
        b = attention_map(raw_b, "B", s, device)
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


def _js_sums(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(H, H') sums over query words i of JS(a_h,i || b_h',i), natural log, for one sentence.

    JS(p || q) = (sum p log p + sum q log q) / 2 - sum m log m with m = (p + q) / 2 (0 log 0 = 0).
    Heads of A are processed in chunks so the (chunk, H', T, T) mixture stays under MAX_PAIR_ELEMENTS.
    """
    neg_entropy_a = torch.xlogy(a, a).sum(dim=(-1, -2))  # (H,): summed over query words
    neg_entropy_b = torch.xlogy(b, b).sum(dim=(-1, -2))  # (H',)
    per_head = b.numel()
    chunk = max(1, MAX_PAIR_ELEMENTS // per_head)
    parts = []
    for start in range(0, a.shape[0], chunk):
        m = 0.5 * (a[start:start + chunk, None] + b[None])  # (c, H', T, T)
        parts.append(torch.xlogy(m, m).sum(dim=(-1, -2)))
    mixture = torch.cat(parts)
    return 0.5 * (neg_entropy_a[:, None] + neg_entropy_b[None, :]) - mixture


def _unit_centred_rows(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows centred and scaled to unit norm, and the mask of rows that are not constant."""
    z = a - a.mean(dim=-1, keepdim=True)
    norms = z.norm(dim=-1)
    valid = norms > CONSTANT_RTOL * a.abs().amax(dim=-1) * math.sqrt(a.shape[-1])
    return z / torch.where(valid, norms, torch.ones_like(norms))[..., None], valid


def attention_head_similarity(A: Iterable[Any], B: Iterable[Any], kind: HeadSimilarity = "js") -> np.ndarray:
    """(heads of A) x (heads of B) similarity matrix s(h, h'), kind "js" or "pearson" (see the module doc)."""
    if kind not in ("js", "pearson"):
        raise ValueError(f"attention_head_similarity: kind must be 'js' or 'pearson', got {kind!r}")
    total: torch.Tensor | None = None
    count: torch.Tensor | float = 0.0
    rows = excluded = 0
    for a, b in sentence_pairs(A, B):
        if kind == "js":
            part: torch.Tensor = _js_sums(a, b)
            count = count + a.shape[-1]
        else:
            za, va = _unit_centred_rows(a)
            zb, vb = _unit_centred_rows(b)
            pair_valid = (va[:, None, :] & vb[None, :, :]).to(torch.float64)  # (H, H', T)
            part = (torch.einsum("hij,gij->hgi", za, zb) * pair_valid).sum(dim=-1)
            count = count + pair_valid.sum(dim=-1)
            excluded += int((~va).sum()) + int((~vb).sum())
            rows += a.shape[-1] * (a.shape[0] + b.shape[0])
        total = part if total is None else total + part
    assert total is not None  # sentence_pairs raises on empty input
    if kind == "js":
        return (1.0 - total / count).cpu().numpy()
    counts = torch.as_tensor(count)
    if bool((counts == 0).any()):
        h, g = (int(v) for v in torch.nonzero(counts == 0)[0])
        raise ValueError(f"attention_pearson: head {h} of A and head {g} of B share no query word whose "
                         "attention rows both vary; their correlation is undefined")
    if excluded:
        warnings.warn(f"attention_pearson: left out {excluded} of {rows} attention rows that are constant "
                      "(uniform or one-word); they have no correlation", UserWarning, stacklevel=3)
    return (total / counts).cpu().numpy()


def _directed_layer_score(similarity: np.ndarray) -> float:
    """Mean over heads of A of the best-matching head of B (the attention analogue of maxsim)."""
    return float(similarity.max(axis=1).mean())


def attention_js(A: Iterable[Any], B: Iterable[Any]) -> float:
    """Layer similarity A -> B from Jensen-Shannon head similarity: mean_h max_h' 1 - mean JS (directed)."""
    return _directed_layer_score(attention_head_similarity(A, B, kind="js"))


def attention_pearson(A: Iterable[Any], B: Iterable[Any]) -> float:
    """Layer similarity A -> B from row-Pearson head similarity: mean_h max_h' mean Pearson (directed)."""
    return _directed_layer_score(attention_head_similarity(A, B, kind="pearson"))


def attention_cka(A: Iterable[Any], B: Iterable[Any]) -> float:
    """Linear CKA between the layers' heads: rows = every (sentence, i, j) attention weight, columns = heads.

    Streams centred cross-products (H x H', like the engine): each column is shifted by its first-sentence
    mean before accumulating, which leaves the covariances exact and avoids cancellation. Symmetric.
    """
    n = 0
    shift_a = shift_b = sum_a = sum_b = saa = sbb = sab = None
    for a, b in sentence_pairs(A, B):
        xa = a.reshape(a.shape[0], -1).T  # (T*T, H)
        xb = b.reshape(b.shape[0], -1).T
        if shift_a is None:
            shift_a, shift_b = xa.mean(dim=0), xb.mean(dim=0)
            sum_a, sum_b = torch.zeros_like(shift_a), torch.zeros_like(shift_b)
            saa = torch.zeros(xa.shape[1], xa.shape[1], dtype=torch.float64, device=xa.device)
            sbb = torch.zeros(xb.shape[1], xb.shape[1], dtype=torch.float64, device=xa.device)
            sab = torch.zeros(xa.shape[1], xb.shape[1], dtype=torch.float64, device=xa.device)
        assert shift_b is not None and sum_a is not None and sum_b is not None
        assert saa is not None and sbb is not None and sab is not None
        xa, xb = xa - shift_a, xb - shift_b
        n += xa.shape[0]
        sum_a += xa.sum(dim=0)
        sum_b += xb.sum(dim=0)
        saa += xa.T @ xa
        sbb += xb.T @ xb
        sab += xa.T @ xb
    assert sum_a is not None and sum_b is not None and saa is not None and sbb is not None and sab is not None
    caa = saa - torch.outer(sum_a, sum_a) / n
    cbb = sbb - torch.outer(sum_b, sum_b) / n
    cab = sab - torch.outer(sum_a, sum_b) / n
    norm_a, norm_b = float(torch.linalg.matrix_norm(caa)), float(torch.linalg.matrix_norm(cbb))
    if norm_a == 0.0 or norm_b == 0.0:
        which = "A" if norm_a == 0.0 else "B"
        raise ValueError(f"attention_cka: every head of {which} has constant attention weights over all "
                         "(sentence, i, j); CKA is undefined")
    return float(torch.linalg.matrix_norm(cab)) ** 2 / (norm_a * norm_b)
