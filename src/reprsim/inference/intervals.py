"""Standard errors and intervals from replicates: the delete-one-block jackknife and the percentile bootstrap."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def jackknife_summary(estimate: float, leave_one_out: np.ndarray) -> tuple[float, float]:
    """The delete-one-block jackknife's standard error and bias of an estimate.

    Parameters
    ----------
    estimate
        The value on every block.
    leave_one_out
        (G,) the value with each block left out.

    Returns
    -------
    tuple of (float, float)
        ``(se, bias)`` with se^2 = (G - 1) / G sum (t_g - t_.)^2 and bias = (G - 1) (t_. - estimate).
    """
    t = np.asarray(leave_one_out, dtype=np.float64)
    g = t.size
    mean = float(t.mean())
    se = math.sqrt((g - 1) / g * float(((t - mean) ** 2).sum()))
    return se, (g - 1) * (mean - float(estimate))


def jackknife_influence(leave_one_out: np.ndarray) -> np.ndarray:
    """Each block's empirical influence, (G - 1)(t_. - t_g), from the leave-one-out values."""
    t = np.asarray(leave_one_out, dtype=np.float64)
    return (t.size - 1) * (t.mean() - t)


def linearised_bootstrap(estimate: float, leave_one_out: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Bootstrap replicates of an estimate from its jackknife influence values (first order in the weights).

    A replicate with block multiplicities c_g (summing to G) is ``estimate + sum_g (c_g - 1) u_g / G`` with u
    the jackknife influence values: the linear term of the replicate's expansion, which costs nothing per
    replicate and never duplicates a row inside a U-statistic.

    Parameters
    ----------
    estimate
        The value on every block.
    leave_one_out
        (G,) the value with each block left out.
    counts
        (B, G) block multiplicities (`reprsim.inference.bootstrap_counts`).

    Returns
    -------
    numpy.ndarray
        (B,) replicates.
    """
    u = jackknife_influence(leave_one_out)
    c = np.asarray(counts, dtype=np.float64)
    return float(estimate) + (c - 1.0) @ u / u.size


def percentile_interval(replicates: np.ndarray, alpha: float) -> tuple[float, float]:
    """The bootstrap percentile interval of level 1 - alpha.

    Parameters
    ----------
    replicates
        (B,) bootstrap replicates.
    alpha
        One minus the level.

    Returns
    -------
    tuple of (float, float)
        The alpha / 2 and 1 - alpha / 2 quantiles (linear interpolation).
    """
    r = np.asarray(replicates, dtype=np.float64)
    low, high = np.quantile(r, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def basic_interval(estimate: float, replicates: np.ndarray, alpha: float) -> tuple[float, float]:
    """The basic (reflected percentile) bootstrap interval, (2 t - q_high, 2 t - q_low).

    Linear CKA is biased upwards at finite n and a replicate with duplicated blocks more so, so its plain
    percentile interval can sit wholly above the estimate; reflecting the quantiles about the estimate
    carries the replicates' bias over to the estimate's, in the right direction. For replicates symmetric
    about the estimate (the linearised ones) it equals the percentile interval.

    Parameters
    ----------
    estimate
        The value on every block.
    replicates
        (B,) bootstrap replicates.
    alpha
        One minus the level.

    Returns
    -------
    tuple of (float, float)
        The interval.
    """
    low, high = percentile_interval(replicates, alpha)
    return 2 * float(estimate) - high, 2 * float(estimate) - low


def normal_interval(estimate: float, se: float, alpha: float, dof: int | None = None) -> tuple[float, float]:
    """The interval estimate -/+ q se, with q the Student t quantile on `dof` degrees of freedom (normal when None)."""
    q = float(stats.norm.ppf(1 - alpha / 2) if dof is None else stats.t.ppf(1 - alpha / 2, dof))
    return float(estimate) - q * se, float(estimate) + q * se
