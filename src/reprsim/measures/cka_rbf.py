"""CKA with Gaussian (RBF) kernels and the median bandwidth rule (Kornblith et al. 2019).

`rbf_gram` forms one representation's n x n Gram matrix, `rbf_cka` the biased-HSIC CKA of two of them
(`reprsim.measures.hsic.gram_cka`) on a row subsample of large inputs.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from reprsim.arrays import ArrayLike, centre
from reprsim.measures._subsample import as_subsampled_pair
from reprsim.measures.rsm import copy_upper

from .hsic import gram_cka, require_variation


def _median_of_all_entries(D: torch.Tensor) -> float:
    """numpy-style median (mean of the two middle values for an even count) of every entry of D.

    D is a squared-distance matrix: symmetric, non-negative, with a zero diagonal. Sorted, its n^2 entries are
    the n zeros of the diagonal and then each value above the diagonal twice, so the k-th smallest entry
    (k > n) is the ceil((k - n) / 2)-th smallest of the upper triangle: one selection (numpy's introselect,
    in place) on a copy of that half.
    """
    n = D.shape[0]
    upper = np.empty(n * (n - 1) // 2)
    copy_upper(D, 0, torch.from_numpy(upper))
    count = n * n
    wanted = [count // 2, count // 2 + 1] if count % 2 == 0 else [(count + 1) // 2]  # 1-based ranks
    positions = sorted({(k - n + 1) // 2 - 1 for k in wanted if k > n})
    if positions:
        upper.partition(positions)
    values = [0.0 if k <= n else float(upper[(k - n + 1) // 2 - 1]) for k in wanted]
    return sum(values) / len(values)


def rbf_gram(x: torch.Tensor, t: float, name: str = "X") -> torch.Tensor:
    """Gaussian (RBF) Gram matrix with the median bandwidth: ``K_ij = exp(-d_ij^2 / (2 t^2 m))``.

    ``m`` is the median of all squared distances, including the diagonal zeros: Kornblith et al.'s
    ``gram_rbf`` bandwidth rule. Distances come from the centred rows (the same distances, less
    cancellation); tiny negative rounding is clipped to 0 and the diagonal is exactly 0.

    Parameters
    ----------
    x
        The representation, n x p, float64.
    t
        The bandwidth as a fraction of the median distance.
    name
        What the error message calls the representation.

    Returns
    -------
    torch.Tensor
        The n x n Gram matrix.

    Raises
    ------
    ValueError
        If the median squared distance is 0 (at least half of the row pairs are identical).
    """
    x = centre(x)
    sq = x.square().sum(dim=1)
    D = x @ x.T
    D.mul_(-2.0).add_(sq[:, None]).add_(sq[None, :]).clamp_(min=0.0)
    D.fill_diagonal_(0.0)
    m = _median_of_all_entries(D)
    if not m > 0.0:
        raise ValueError(
            f"rbf_cka: the median squared distance between rows of {name} is 0 (at least half of the row "
            "pairs are identical), so the median bandwidth is undefined"
        )
    return D.mul_(-1.0 / (2.0 * t * t * m)).exp_()


def rbf_cka(X: ArrayLike, Y: ArrayLike, t: float = 0.8, max_rows: int | None = 10000, seed: int = 0) -> float:
    """CKA with Gaussian (RBF) kernels whose bandwidth is t times the median distance (Kornblith et al. 2019).

    The biased-HSIC CKA of the two Gram matrices of `rbf_gram`. It needs two n x n matrices, so large inputs
    are subsampled. Symmetric; invariant to orthogonal maps and isotropic scaling (the median bandwidth
    scales along), not to general invertible linear maps.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.
    t
        Bandwidth as a fraction of the median distance (the paper uses 0.2, 0.4 and 0.8).
    max_rows
        When ``n > max_rows``, compare ``max_rows`` rows drawn with `seed`, the same rows for X and Y;
        ``None`` uses all rows.
    seed
        Seed of the row subsample.

    Returns
    -------
    float
        RBF CKA, in [0, 1].

    Raises
    ------
    ValueError
        If `t` is not a positive finite number or `max_rows` is invalid; for malformed input, when X or Y is
        constant in every neuron, or when a median squared distance is 0.

    Warns
    -----
    SubsampleWarning
        When it runs on a subsample.
    """
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0 or not math.isfinite(t):
        raise ValueError(f"rbf_cka: t must be a positive number, got {t!r}")
    x, y, _ = as_subsampled_pair(X, Y, max_rows, seed, "rbf_cka")
    require_variation(x, "X", "rbf_cka")
    require_variation(y, "Y", "rbf_cka")
    return gram_cka(rbf_gram(x, float(t), "X"), rbf_gram(y, float(t), "Y"), "rbf_cka")


