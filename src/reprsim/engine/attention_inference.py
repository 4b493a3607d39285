"""Confidence intervals of the attention measures by resampling sentences, from per-sentence sums of the fits.

Every attention measure is a function of sums over sentences (`reprsim.measures.attention`):

- Jensen-Shannon: ``s(h, h') = 1 - sum_s J_s(h, h') / sum_s T_s``, J_s the sentence's summed row divergences;
- Pearson: ``s(h, h') = sum_s R_s(h, h') / sum_s V_s(h, h')``, R_s the sentence's summed row correlations and
  V_s its count of rows that vary in both heads;
- attention CKA: linear CKA of the heads' entries, from each sentence's cross-products X_s'Y_s, column sums
  and entry count (centred with the replicate's weights).

The layer score (mean over A's heads of the best head of B, or the CKA ratio) is then taken per replicate.
Recomputing a measure on resampled sentences, a sentence drawn twice included, is the same as weighting
these sums by the sentences' multiplicities: no row pairs with another row of its own copy, so the
bootstrap with replacement over sentences is exact and needs no correction. ``ci="bootstrap"``: B draws of
the sentences with replacement (the same draws for every pair of layers), percentile interval, standard
error the replicates' standard deviation. ``ci="jackknife"``: the delete-one-group jackknife over G groups
of contiguous sentences (near-equal words), t interval on G - 1 degrees of freedom.

No null: a permutation null would pair a sentence of one layer with another sentence of the other, which
only compares maps of equal length; most sentences of a subsample have a length of their own and would stay
paired with themselves, so the null would keep much of the signal it should remove.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from reprsim import inference
from reprsim.inference import InferenceOptions, Uncertainty
from reprsim.inference.combine import InferenceWarning
from reprsim.measures.attention import AttentionFit

from .sample_inference import MIN_GROUPS, bootstrap_uncertainty, jackknife_uncertainty, not_available

# Entries of a (heads_B, entries) mixture block built at once in the Jensen-Shannon pass (32 MB).
_MIXTURE_ELEMENTS = 1 << 22
NULL_METHOD = ("none: a permutation null over sentences compares only maps of equal length, and most "
               "sentences have a length of their own")


def sentence_offsets(lengths: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets of each sentence's entries (T_s^2 each) and rows (T_s each) in a fit."""
    t = np.asarray(lengths, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(t * t)])[:-1], np.concatenate([[0], np.cumsum(t)])[:-1]


def _segment_sums(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums over segments of the last axis beginning at `starts` (every segment non-empty)."""
    return np.add.reduceat(values, starts, axis=-1)


def js_sentence_sums(pa: AttentionFit, pb: AttentionFit) -> np.ndarray:
    """(S, H, H') each sentence's sum over its query rows of JS(a_h,i || b_h',i).

    The per-sentence form of `reprsim.measures.attention_score._js_head_sums`: per entry,
    ``[a log a + ln2 a]/2 + [b log b + ln2 b]/2 - S log S / 2`` with S = a + b.
    """
    a, b = pa.entries.cpu().numpy(), pb.entries.cpu().numpy()
    starts, _ = sentence_offsets(pa.lengths)
    own_a = 0.5 * _segment_sums(_xlogx(a) + math.log(2.0) * a, starts)  # (H, S)
    own_b = 0.5 * _segment_sums(_xlogx(b) + math.log(2.0) * b, starts)  # (H', S)
    mixture = np.zeros((len(starts), a.shape[0], b.shape[0]))
    bounds = np.concatenate([starts, [a.shape[1]]])
    step = max(1, _MIXTURE_ELEMENTS // max(b.shape[0], 1))
    first = 0
    while first < len(starts):  # whole sentences per block, as many as fit
        last = int(np.searchsorted(bounds, bounds[first] + step, side="right")) - 1
        last = min(max(last, first + 1), len(starts))
        lo, hi = bounds[first], bounds[last]
        local = starts[first:last] - lo
        for h in range(a.shape[0]):
            s = a[h, lo:hi] + b[:, lo:hi]
            mixture[first:last, h, :] = _segment_sums(_xlogx(s), local).T
        first = last
    return own_a.T[:, :, None] + own_b.T[:, None, :] - 0.5 * mixture


def _xlogx(x: np.ndarray) -> np.ndarray:
    """The entries' x log x, with 0 log 0 = 0."""
    out = np.zeros_like(x)
    np.multiply(x, np.log(x, where=x > 0, out=np.zeros_like(x)), out=out, where=x > 0)
    return out


def pearson_sentence_sums(pa: AttentionFit, pb: AttentionFit) -> tuple[np.ndarray, np.ndarray]:
    """(S, H, H') each sentence's summed row correlations, and its count of rows that vary on both sides."""
    assert pa.valid_rows is not None and pb.valid_rows is not None
    entries, rows = sentence_offsets(pa.lengths)
    totals, counts = [], []
    for s, t in enumerate(pa.lengths):
        e, r = int(entries[s]), int(rows[s])
        totals.append(pa.entries[:, e:e + t * t] @ pb.entries[:, e:e + t * t].T)
        counts.append(pa.valid_rows[:, r:r + t] @ pb.valid_rows[:, r:r + t].T)
    return torch.stack(totals).cpu().numpy(), torch.stack(counts).cpu().numpy()


def cka_sentence_terms(pa: AttentionFit, pb: AttentionFit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each sentence's cross-products X_s'Y_s (S, H, H') and column sums of X (S, H) and Y (S, H')."""
    entries, _ = sentence_offsets(pa.lengths)
    starts = torch.as_tensor(entries)
    cross = []
    for s, t in enumerate(pa.lengths):
        e = int(entries[s])
        cross.append(pa.entries[:, e:e + t * t] @ pb.entries[:, e:e + t * t].T)
    sum_a = _segment_sums(pa.entries.cpu().numpy(), starts.numpy()).T
    sum_b = _segment_sums(pb.entries.cpu().numpy(), starts.numpy()).T
    return torch.stack(cross).cpu().numpy(), sum_a, sum_b


def _weighted_cross(weights: np.ndarray, cross: np.ndarray, sum_a: np.ndarray, sum_b: np.ndarray,
                    entries: np.ndarray) -> np.ndarray:
    """(R, H, H') centred cross-products under each replicate's sentence weights."""
    total = weights @ entries
    return (np.einsum("rs,shk->rhk", weights, cross)
            - np.einsum("rh,rk->rhk", weights @ sum_a, weights @ sum_b) / total[:, None, None])


def _directed(similarity: np.ndarray) -> np.ndarray:
    """(R,) mean over A's heads of the best head of B, per replicate of (R, H, H') head similarities."""
    return similarity.max(axis=2).mean(axis=1)


class AttentionReplicates:
    """Replicates of one attention measure for pairs of layer fits under fixed sentence weights.

    Parameters
    ----------
    kind
        ``"js"``, ``"pearson"`` or ``"cka"``.
    weights
        (R, S) sentence multiplicities (bootstrap) or 0/1 weights (jackknife), one row per replicate; a
        final row of ones is added for the estimate.
    lengths
        Words of each sentence.
    """

    def __init__(self, kind: str, weights: np.ndarray, lengths: Sequence[int]) -> None:
        self.kind = kind
        self.weights = np.vstack([np.asarray(weights, dtype=np.float64), np.ones((1, len(lengths)))])
        t = np.asarray(lengths, dtype=np.float64)
        self.rows, self.entries = t, t * t
        self._own: dict[int, np.ndarray] = {}

    def values(self, pa: AttentionFit, pb: AttentionFit, a: int, b: int) -> tuple[np.ndarray, float]:
        """(R,) the replicates of the pair and its value on every sentence (weights one)."""
        w = self.weights
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.kind == "js":
                sums = js_sentence_sums(pa, pb)
                out = _directed(1.0 - np.einsum("rs,shk->rhk", w, sums) / (w @ self.rows)[:, None, None])
            elif self.kind == "pearson":
                totals, counts = pearson_sentence_sums(pa, pb)
                out = _directed(np.einsum("rs,shk->rhk", w, totals) / np.einsum("rs,shk->rhk", w, counts))
            else:
                cross = _weighted_cross(w, *cka_sentence_terms(pa, pb), self.entries)
                own_a, own_b = self._self(pa, a), self._self(pb, b)
                out = (cross**2).sum(axis=(1, 2)) / np.sqrt(own_a * own_b)
        return out[:-1], float(out[-1])

    def _self(self, fit: AttentionFit, index: int) -> np.ndarray:
        """(R + 1,) ||X'X||_F^2 per replicate of one layer (cached)."""
        if index not in self._own:
            cross = _weighted_cross(self.weights, *cka_sentence_terms(fit, fit), self.entries)
            self._own[index] = (cross**2).sum(axis=(1, 2))
        return self._own[index]


def sentence_groups_of(lengths: Sequence[int], blocks: int) -> np.ndarray | None:
    """The group (0..G-1) of each sentence, G = min(blocks, sentences); ``None`` when too few sentences."""
    words = np.asarray(lengths, dtype=np.int64)
    groups = min(blocks, words.size)
    if groups < blocks:
        warnings.warn(f"blocks={blocks} is more than the {words.size} sentences of the attention subsample; its "
                      f"jackknife uses {groups} groups", InferenceWarning, stacklevel=3)
    if groups < MIN_GROUPS:
        return None
    bounds = inference.sentence_blocks(words, groups)
    return inference.block_of_rows(bounds, np.cumsum(words) - words)


def replicate_weights(options: InferenceOptions, lengths: Sequence[int]) -> tuple[np.ndarray | None, str]:
    """The (R, S) sentence weights the options ask for, and why there are none when there are none."""
    if options.ci == "bootstrap":
        if len(lengths) < 2:
            return None, "fewer than 2 sentences"
        return inference.bootstrap_counts(len(lengths), options.resamples, options.seed).astype(np.float64), ""
    groups = sentence_groups_of(lengths, options.blocks)
    if groups is None:
        return None, f"fewer than {MIN_GROUPS} sentences for a jackknife"
    n_groups = int(groups.max()) + 1
    return (groups[None, :] != np.arange(n_groups)[:, None]).astype(np.float64), ""


def attention_uncertainty(options: InferenceOptions, estimate: float, replicates: np.ndarray | None,
                          reason: str, measure: str) -> Uncertainty:
    """The interval of one attention value from its replicates, and the null's explanation."""
    if options.ci == "none":
        u = Uncertainty()
    elif replicates is None:
        u = not_available(f"{measure}: {reason}")
    elif options.ci == "bootstrap":
        u = bootstrap_uncertainty(replicates, options.alpha)
    else:
        u = jackknife_uncertainty(estimate, replicates, options, None)
    if options.null != "none":
        u.null_method = NULL_METHOD
    return u
