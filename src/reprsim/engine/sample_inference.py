"""Confidence intervals and permutation nulls of the n x n measures on their row subsample.

The resampling unit is the sentence: rows of one sentence share a context, so they are kept or dropped
together. Every pair of a study gets the same resampled sentence sets and the same row permutations (all
drawn from ``inference.seed``), so that values can be differenced replicate by replicate.

Intervals, by measure (the replicates are the measure recomputed on the chosen rows, from the fits):

- RBF CKA, distance correlation and RSA with ``compare="cosine_cov"`` are V-statistics of double-centred
  matrices, for which a row drawn twice is what the plug-in bootstrap means:
  ``ci="bootstrap"`` draws B sets of the subsample's sentences with replacement and recomputes the measure
  on their rows (exactly, as a weighted sum: `reprsim.engine.kernel_inference`); the interval is the
  percentile interval and the standard error the replicates' standard deviation. RBF CKA's bandwidth stays
  the whole subsample's (a duplicated row would pull the median distance to zero).
- The k-NN measures and RSA's other comparisons are not: a duplicated row is its own nearest neighbour
  and adds pairs of zero dissimilarity to an RDM (a U-statistic's diagonal). They use the delete-one-group
  jackknife over G groups of sentences (contiguous in corpus order, near-equal rows;
  `reprsim.inference.sentence_blocks`), each replicate an exact recomputation on the remaining rows (the
  k-NN graph of the remaining rows from a deeper neighbour list, the RDM re-ranked). ``ci="bootstrap"``
  then gives the percentile interval of the jackknife's linearised bootstrap over the G groups (as the
  linear measures without an exact bootstrap do: `reprsim.inference.linearised_bootstrap`); the replicates
  kept are the G leave-one-group-out values. Half-sampling would need a new neighbour search or a full
  re-ranking per replicate (B of them), the jackknife G.
- ``ci="jackknife"``: every measure, the delete-one-group jackknife: standard error, t interval on G - 1
  degrees of freedom.
- Representation settings computed from all of the subsample's rows (the clipping value of the k-NN
  measures, RBF CKA's bandwidth) are held fixed in the replicates.

Nulls: ``null="permutation"`` pairs X's rows with Y's rows permuted by each of K shared permutations, again
from the fits (re-indexed matrices and RDMs, relabelled k-NN graphs); p = (1 + #{null >= s}) / (K + 1), and
the calibrated score clamp((s - tau) / (1 - tau), 0, 1) with tau the null's (1 - alpha) order statistic.
Every measure here is a similarity whose largest value, for identical inputs, is 1, so s_max = 1 (RSA and
second-order cosine reach down to -1; a score below tau calibrates to 0 whatever its sign). A distance
measured on the subsample is negated first (its smallest value, 0, plays s_max). ``null="analytic"``
gives the exact permutation mean where one is known in closed form (`analytic_null_method`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from reprsim import inference
from reprsim.inference import InferenceOptions, Uncertainty
from reprsim.inference.combine import InferenceWarning

# Fewer groups than this give no interval: a jackknife on a handful of groups has too few degrees of freedom.
MIN_GROUPS = 5
# Draws of the permutations use their own stream of the study's seed, apart from the bootstrap's.
_PERMUTATION_STREAM = 1


@dataclass(frozen=True)
class SentenceGroups:
    """The subsample's rows by sentence, and the sentences by jackknife group.

    Parameters
    ----------
    sentence
        (n,) the sentence of each row, numbered 0..S-1 in corpus order.
    group_of_sentence
        (S,) the group of each sentence (0..G-1); empty when there are too few sentences for groups.
    n_groups
        G (0 when there are too few sentences).
    """

    sentence: np.ndarray
    group_of_sentence: np.ndarray
    n_groups: int

    @property
    def n_sentences(self) -> int:
        """S."""
        return int(self.sentence.max()) + 1 if self.sentence.size else 0

    @property
    def group(self) -> np.ndarray:
        """(n,) the group of each row."""
        return self.group_of_sentence[self.sentence]

    def keep_masks(self) -> list[torch.Tensor]:
        """The G row masks of the jackknife: every row but those of group g."""
        group = torch.as_tensor(self.group)
        return [group != g for g in range(self.n_groups)]

    def jackknife_weights(self) -> np.ndarray:
        """(G, S) sentence weights of the jackknife: 0 for the left-out group's sentences, 1 elsewhere."""
        return (self.group_of_sentence[None, :] != np.arange(self.n_groups)[:, None]).astype(np.float64)

    @property
    def largest_group_rows(self) -> int:
        """Rows of the largest group."""
        return int(np.bincount(self.group).max()) if self.n_groups else 0


def sentence_groups(sentence_of_row: np.ndarray | None, n: int, blocks: int, warn: bool = True) -> SentenceGroups:
    """Number the subsample's sentences and split them into G contiguous groups of near-equal rows.

    Parameters
    ----------
    sentence_of_row
        (n,) the corpus sentence of each subsample row; ``None`` makes every row its own sentence.
    n
        Rows of the subsample.
    blocks
        G asked for (``inference.blocks``).
    warn
        Warn when there are fewer sentences than `blocks` (off where no jackknife is computed).

    Returns
    -------
    SentenceGroups
        The grouping; G is the number of sentences when there are fewer than `blocks` (with an
        `InferenceWarning`), and 0 when there are fewer than `MIN_GROUPS`.

    Raises
    ------
    ValueError
        If `sentence_of_row` does not give one sentence per row.
    """
    ids = np.arange(n) if sentence_of_row is None else np.asarray(sentence_of_row)
    if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"sentence_of_row must hold one integer sentence index per subsample row ({n}), got "
                         f"shape {ids.shape} and dtype {ids.dtype}")
    _, sentence = np.unique(ids, return_inverse=True)
    sentence = sentence.reshape(-1).astype(np.int64)
    counts = np.bincount(sentence)
    groups = min(blocks, counts.size)
    if groups < blocks and warn:
        warnings.warn(f"blocks={blocks} is more than the {counts.size} sentences of the row subsample; the n x n "
                      f"measures' jackknife uses {groups} groups", InferenceWarning, stacklevel=3)
    if groups < MIN_GROUPS:
        return SentenceGroups(sentence, np.zeros(0, dtype=np.int64), 0)
    bounds = inference.sentence_blocks(counts, groups)
    starts = np.cumsum(counts) - counts
    return SentenceGroups(sentence, inference.block_of_rows(bounds, starts), groups)


def row_permutations(n: int, permutations: int, seed: int) -> torch.Tensor:
    """(K, n) int64 row permutations drawn from the study's seed: the k-th is the same for every pair.

    Parameters
    ----------
    n
        Rows.
    permutations
        K.
    seed
        The study's seed.

    Returns
    -------
    torch.Tensor
        One permutation per row.
    """
    rng = np.random.default_rng([seed, _PERMUTATION_STREAM])
    return torch.as_tensor(np.stack([rng.permutation(n) for _ in range(permutations)]).astype(np.int64))


def not_available(reason: str) -> Uncertainty:
    """An interval that cannot be computed: a warning, and ``None`` statistics with the reason as the method."""
    warnings.warn(f"{reason}; reported as not available", InferenceWarning, stacklevel=3)
    return Uncertainty(ci_method=f"not available ({reason})")


def jackknife_uncertainty(estimate: float, loo: np.ndarray, options: InferenceOptions,
                          group_counts: np.ndarray | None) -> Uncertainty:
    """The interval of one value from its G leave-one-group-out values.

    Parameters
    ----------
    estimate
        The value on every row of the subsample.
    loo
        (G,) the values with each group of sentences left out.
    options
        ``ci="jackknife"``: the t interval; ``ci="bootstrap"``: the percentile interval of the linearised
        bootstrap over the groups.
    group_counts
        (B, G) the groups' bootstrap multiplicities (for ``ci="bootstrap"``).

    Returns
    -------
    Uncertainty
        se, ci_low, ci_high, ci_method and the leave-one-out values (``replicate_kind="jackknife"``).
    """
    if not np.all(np.isfinite(loo)):
        return not_available(f"{int((~np.isfinite(loo)).sum())} of {loo.size} leave-one-group-out values could "
                             "not be computed")
    se, _bias = inference.jackknife_summary(estimate, loo)
    if options.ci == "bootstrap" and group_counts is not None:
        replicates = inference.linearised_bootstrap(estimate, loo, group_counts)
        low, high = inference.percentile_interval(replicates, options.alpha)
        method = f"sentence-group bootstrap (linearised from the jackknife over {loo.size} groups, percentile)"
    else:
        low, high = inference.normal_interval(estimate, se, options.alpha, dof=loo.size - 1)
        method = f"delete-one-group jackknife ({loo.size} sentence groups, t interval)"
    return Uncertainty(se=se, ci_low=low, ci_high=high, ci_method=method, replicates=loo, replicate_kind="jackknife")


def bootstrap_uncertainty(replicates: np.ndarray, alpha: float) -> Uncertainty:
    """The percentile interval and standard deviation of B sentence-bootstrap replicates."""
    if not np.all(np.isfinite(replicates)):
        return not_available(f"{int((~np.isfinite(replicates)).sum())} of {replicates.size} bootstrap replicates "
                             "are undefined")
    low, high = inference.percentile_interval(replicates, alpha)
    return Uncertainty(se=float(np.std(replicates, ddof=1)), ci_low=low, ci_high=high,
                       ci_method=f"sentence bootstrap ({replicates.size} replicates, exact, percentile)",
                       replicates=replicates, replicate_kind="bootstrap")


def permutation_uncertainty(estimate: float, null: np.ndarray, alpha: float, larger_is_similar: bool) -> Uncertainty:
    """p-value, threshold and calibrated score of a value against its K permutation values.

    Parameters
    ----------
    estimate
        The value on the paired rows.
    null
        (K,) the values with Y's rows permuted.
    alpha
        The calibration level.
    larger_is_similar
        False for a distance: it is negated (so that the tail and the calibration face the right way) with
        0 as its best value.

    Returns
    -------
    Uncertainty
        null_mean, p_value, calibrated, null_values and null_method.
    """
    if not np.all(np.isfinite(null)):
        warnings.warn(f"{int((~np.isfinite(null)).sum())} of {null.size} permutation values are undefined; the "
                      "null is reported as not available", InferenceWarning, stacklevel=2)
        return Uncertainty(null_method="not available (undefined permutation values)")
    sign = 1.0 if larger_is_similar else -1.0
    s, z = sign * float(estimate), sign * null
    tau = inference.null_threshold(s, z, alpha)
    return Uncertainty(null_mean=float(null.mean()), p_value=inference.permutation_p_value(s, z),
                       calibrated=inference.calibrated_score(s, tau, 1.0 if larger_is_similar else 0.0),
                       null_values=null, null_method=f"permutation ({null.size} shared row permutations)")


def analytic_uncertainty(mean: float | None, what: str) -> Uncertainty:
    """The closed-form null mean, or none with a method that says so."""
    if mean is None:
        return Uncertainty(null_method=f"none known in closed form for {what}; use null='permutation'")
    return Uncertainty(null_mean=float(mean), null_method=f"analytic permutation mean ({what})")


def merge(parts: Sequence[Uncertainty]) -> Uncertainty:
    """One Uncertainty holding the interval of one part and the null of another."""
    out = Uncertainty()
    for part in parts:
        out = out.merged(part)
    return out
