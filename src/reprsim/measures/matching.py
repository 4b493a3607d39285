"""Neuron matching: a 1-to-1 assignment of neurons (Hungarian) and soft matching by optimal transport.

Both start from the Pearson correlations of X's neurons with Y's, ``C_xy`` scaled by the neurons' standard
deviations, so the engine (`reprsim.engine`) derives them from its cross-product blocks.

- `hard_matching`: the 1-to-1 assignment of neurons maximising the summed ``|Pearson|``
  (``scipy.optimize.linear_sum_assignment``); the score is the mean matched ``|Pearson|``.
- `soft_matching_distance` (Khosla & Williams 2023): the optimal transport between X's and Y's neurons,
  each side uniformly weighted, with ground cost the squared distance of the centred unit-norm neurons,
  ``2 - 2 Pearson``; the distance is the square root of the transport cost.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.optimize

from reprsim.arrays import ArrayLike, as_pair, warn_constant
from reprsim.measures.neuron import standardised_columns


def correlation_matrix(X: ArrayLike, Y: ArrayLike, measure: str) -> np.ndarray:
    """Pearson correlations of X's varying neurons (rows) with Y's (columns).

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.
    measure
        The measure's name, which starts the messages.

    Returns
    -------
    numpy.ndarray
        p' x q' float64 in [-1, 1]; constant neurons are left out (and counted in a warning).

    Raises
    ------
    ValueError
        For malformed input or when every neuron of a side is constant.

    Warns
    -----
    ConstantNeuronWarning
        When constant neurons were left out.
    """
    x, y = as_pair(X, Y)
    x_unit, x_const = standardised_columns(x, "X", measure)
    y_unit, y_const = standardised_columns(y, "Y", measure)
    warn_constant(int(x_const.sum()), int(y_const.sum()), measure)
    corr = (x_unit.T @ y_unit).clamp_(-1.0, 1.0)
    return corr.cpu().numpy()


def assignment_score(corr: np.ndarray) -> float:
    """Mean ``|corr|`` of the 1-to-1 assignment of rows to columns maximising its sum.

    Parameters
    ----------
    corr
        p x q correlations.

    Returns
    -------
    float
        The mean over the ``min(p, q)`` matched pairs.
    """
    strength = np.abs(corr)
    rows, cols = scipy.optimize.linear_sum_assignment(strength, maximize=True)
    return float(strength[rows, cols].mean())


def hard_matching(X: ArrayLike, Y: ArrayLike) -> float:
    """1-to-1 neuron matching: the mean ``|Pearson|`` of the best one-to-one assignment of neurons.

    Each neuron of the narrower side is matched to a different neuron of the other so that the summed
    ``|Pearson(x_i, y_j)|`` is largest (the Hungarian problem, solved by ``scipy.optimize.
    linear_sum_assignment``). Symmetric; invariant to permuting, shifting and rescaling (also negating)
    neurons, not to rotations.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.

    Returns
    -------
    float
        The score, in [0, 1]: the mean over the ``min(p, q)`` matched pairs of varying neurons.

    Raises
    ------
    ValueError
        For malformed input or when every neuron of a side is constant.

    Warns
    -----
    ConstantNeuronWarning
        When constant neurons were left out.
    """
    return assignment_score(correlation_matrix(X, Y, "hard_matching"))


def transport_cost(cost: np.ndarray) -> float:
    """The optimal transport cost between uniform weights on the rows and on the columns of `cost`.

    For equal widths an optimal plan is a permutation, found by the assignment problem (SciPy's
    ``linear_sum_assignment``); otherwise POT's exact network simplex (``ot.emd2``) solves it, or, without POT,
    the same linear programme with SciPy's HiGHS solver. All three are exact.

    Parameters
    ----------
    cost
        p x q ground costs.

    Returns
    -------
    float
        ``min_P sum_ij P_ij cost_ij`` over P >= 0 with rows summing to 1/p and columns to 1/q.

    Raises
    ------
    ValueError
        If the linear programme fails.
    """
    p, q = cost.shape
    if p == q:
        # With equal uniform marginals an optimal plan is a permutation / p (Birkhoff-von Neumann): the
        # assignment problem gives the same optimum some 40x faster than the network simplex at width 768.
        rows, cols = scipy.optimize.linear_sum_assignment(cost)
        return float(cost[rows, cols].sum() / p)
    a, b = np.full(p, 1.0 / p), np.full(q, 1.0 / q)
    try:
        import ot
    except ImportError:
        return _transport_cost_highs(cost, a, b)
    return float(ot.emd2(a, b, np.ascontiguousarray(cost), numItermax=max(100_000, 50 * p * q)))


def _transport_cost_highs(cost: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """The transport linear programme solved by SciPy's HiGHS (row sums a, column sums b)."""
    import scipy.sparse

    p, q = cost.shape
    rows = scipy.sparse.kron(scipy.sparse.eye(p), np.ones((1, q)))
    cols = scipy.sparse.kron(np.ones((1, p)), scipy.sparse.eye(q))
    constraints = scipy.sparse.vstack([rows, cols]).tocsr()
    result = scipy.optimize.linprog(cost.ravel(), A_eq=constraints, b_eq=np.concatenate([a, b]),
                                    bounds=(0, None), method="highs")
    if not result.success:
        raise ValueError(f"soft_matching_distance: the transport problem was not solved ({result.message})")
    return float(result.fun)


def soft_matching_from_correlations(corr: np.ndarray) -> float:
    """The soft matching distance of neurons with the given Pearson correlations.

    Parameters
    ----------
    corr
        p x q correlations of the varying neurons.

    Returns
    -------
    float
        ``sqrt(min_P sum P_ij (2 - 2 corr_ij))`` over uniform transport plans.
    """
    return math.sqrt(max(transport_cost(2.0 - 2.0 * corr), 0.0))


def soft_matching_distance(X: ArrayLike, Y: ArrayLike) -> float:
    """Soft matching distance (Khosla & Williams 2023): optimal transport between the two sides' neurons.

    Neurons are centred and scaled to unit norm, so the squared distance of two is ``2 - 2 Pearson``; each
    side's neurons carry weight 1/p (1/q), and the distance is ``sqrt(min_P sum P_ij ||x_i - y_j||^2)`` over
    transport plans P. For p == q the optimum is a permutation. Symmetric; a metric; invariant to permuting,
    shifting and rescaling neurons (not negating them), not to rotations.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.

    Returns
    -------
    float
        The distance, in [0, 2]; 0 when Y's neurons are X's up to order and scale.

    Raises
    ------
    ValueError
        For malformed input, when every neuron of a side is constant, or when the transport problem fails.

    Warns
    -----
    ConstantNeuronWarning
        When constant neurons were left out.
    """
    return soft_matching_from_correlations(correlation_matrix(X, Y, "soft_matching_distance"))
