"""Centered kernel alignment (CKA): linear, debiased, RBF and minibatch variants.

``CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` compares two representations through their n x n
Gram matrices (Kornblith et al. 2019). For the linear kernel the Gram matrices never need forming when
``n > p, q``: ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on centred X, Y is the same number at p x q
cost. The debiased variant replaces the biased HSIC by the unbiased estimator of Song et al. (2012), whose
finite-sample bias otherwise makes CKA of unrelated high-dimensional data far from 0. Minibatch CKA
(Nguyen et al. 2021) sums that unbiased estimator over minibatches, so memory never depends on n.

Every function computes in float64 on the input's device and returns a python float.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from reprsim.arrays import ArrayLike, as_pair, centre, constant_columns
from reprsim.measures._subsample import as_subsampled_pair

Space = Literal["auto", "feature", "gram"]

# The unbiased HSIC estimator divides by n (n - 3) and (n - 1)(n - 2): it needs at least 4 rows.
MIN_ROWS_UNBIASED = 4


def require_variation(x: torch.Tensor, name: str, measure: str) -> None:
    """Refuse a representation that is constant in every neuron: it has no geometry to compare.

    Parameters
    ----------
    x
        The representation, n x p, float64.
    name
        What the message calls it (``"X"`` or ``"Y"``).
    measure
        The measure's name, which starts the message.

    Raises
    ------
    ValueError
        If every column of `x` is constant (all rows identical).
    """
    if bool(constant_columns(x).all()):
        raise ValueError(
            f"{measure}: {name} has zero variance in every neuron (all rows identical); the similarity is "
            "undefined"
        )


def _resolve_space(space: str, n: int, p: int, q: int, measure: str) -> Literal["feature", "gram"]:
    """Feature space (p x q products) when n exceeds both widths, Gram space (n x n) otherwise."""
    if space == "auto":
        return "feature" if n > max(p, q) else "gram"
    if space == "feature":
        return "feature"
    if space == "gram":
        return "gram"
    raise ValueError(f"{measure}: space must be 'auto', 'feature' or 'gram', got {space!r}")


def _ratio(xy: float, xx: float, yy: float, measure: str) -> float:
    """HSIC(X, Y) / sqrt(HSIC(X, X) HSIC(Y, Y)), refusing a non-positive self-term instead of a NaN."""
    for value, name in ((xx, "X"), (yy, "Y")):
        if not value > 0.0:
            raise ValueError(
                f"{measure}: HSIC of {name} with itself is {value:.3g} (not positive); {name} carries no "
                "usable variation for this estimator (too few rows, or (nearly) constant)"
            )
    return xy / math.sqrt(xx * yy)


# ----------------------------------------------------------------------------------------------------------
# Biased HSIC (the original CKA)


def centre_gram_(K: torch.Tensor) -> torch.Tensor:
    """Double-centre a Gram matrix in place: ``H K H`` with ``H = I - 11^T / n``.

    Working in place keeps one n x n matrix per representation, the largest object RBF CKA holds.

    Parameters
    ----------
    K
        A square n x n float matrix; it is overwritten.

    Returns
    -------
    torch.Tensor
        `K` itself, now with zero row and column means.
    """
    K -= K.mean(dim=0, keepdim=True)
    K -= K.mean(dim=1, keepdim=True)
    return K


def gram_cka(K: torch.Tensor, L: torch.Tensor, measure: str = "cka") -> float:
    """Biased-HSIC CKA of two Gram matrices: ``<HKH, HLH> / (||HKH||_F ||HLH||_F)``.

    Parameters
    ----------
    K, L
        The n x n Gram matrices of the two representations; both are centred in place (see
        `centre_gram_`).
    measure
        The measure's name, which starts the error message.

    Returns
    -------
    float
        The CKA value.

    Raises
    ------
    ValueError
        If a centred Gram matrix is zero (its representation carries no usable variation).
    """
    K, L = centre_gram_(K), centre_gram_(L)
    xy = float(torch.dot(K.reshape(-1), L.reshape(-1)))
    return _ratio(xy, float(K.norm()) ** 2, float(L.norm()) ** 2, measure)


def _linear_cka_feature(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of centred x, y from p x q cross-products: ||Y^T X||^2 / (||X^T X|| ||Y^T Y||)."""
    xy = float(torch.linalg.matrix_norm(y.T @ x)) ** 2
    xx = float(torch.linalg.matrix_norm(x.T @ x)) ** 2
    yy = float(torch.linalg.matrix_norm(y.T @ y)) ** 2
    return _ratio(xy, xx, yy, "linear_cka")


def _linear_cka_gram(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of x, y from the n x n Gram matrices K = X X^T, L = Y Y^T."""
    return gram_cka(x @ x.T, y @ y.T, "linear_cka")


def linear_cka(X: ArrayLike, Y: ArrayLike, space: Space = "auto") -> float:
    """Linear CKA (Kornblith et al. 2019): ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` after centring columns.

    This is the biased-HSIC CKA with linear kernels. Symmetric, in [0, 1], 1 for identical inputs;
    invariant to orthogonal maps and isotropic scaling of either side, not to general invertible linear
    maps.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q (numpy or torch, any float dtype).
    space
        ``"feature"`` uses the p x q cross-products; ``"gram"`` the n x n Gram matrices
        (``HSIC(K, L) = tr(K H L H) / (n - 1)^2``); ``"auto"`` picks feature space when
        ``n > max(p, q)``. Both give the same value up to rounding.

    Returns
    -------
    float
        Linear CKA, in [0, 1].

    Raises
    ------
    ValueError
        For malformed input, an unknown `space`, or when X or Y is constant in every neuron.
    """
    x, y = as_pair(X, Y)
    require_variation(x, "X", "linear_cka")
    require_variation(y, "Y", "linear_cka")
    x, y = centre(x), centre(y)
    chosen = _resolve_space(space, x.shape[0], x.shape[1], y.shape[1], "linear_cka")
    return _linear_cka_feature(x, y) if chosen == "feature" else _linear_cka_gram(x, y)


# ----------------------------------------------------------------------------------------------------------
# Unbiased HSIC (Song et al. 2012): debiased and minibatch CKA


def u_centre_(K: torch.Tensor) -> torch.Tensor:
    """U-centre a Gram matrix in place (Szekely & Rizzo 2014).

    Zeroes the diagonal, then applies the centring that makes ``<u_centre_(K), u_centre_(L)> / (n (n - 3))``
    the unbiased HSIC estimator of Song et al. (2012).

    Parameters
    ----------
    K
        A square n x n float matrix, ``n >= 4``; it is overwritten.

    Returns
    -------
    torch.Tensor
        `K` itself, U-centred, with a zero diagonal.
    """
    n = K.shape[0]
    K.fill_diagonal_(0.0)
    means = K.sum(dim=0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    K -= means[:, None]
    K -= means[None, :]
    K.fill_diagonal_(0.0)
    return K


def hsic1_feature(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased HSIC_1 of the linear kernels of x and y, without forming n x n matrices.

    Song et al.'s estimator with ``K~ = X X^T`` and ``L~ = Y Y^T``, diagonals zeroed, is
    ``[tr(K~ L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3))``. With ``a = diag(X X^T)``,
    ``b = diag(Y Y^T)``, ``s_x = X^T 1`` and ``s_y = Y^T 1`` its terms are p x q products:
    ``tr(K~ L~) = ||X^T Y||_F^2 - a.b``, ``1'K~1 = ||s_x||^2 - sum(a)`` and ``K~1 = X s_x - a``.

    Parameters
    ----------
    x, y
        Row-aligned float64 matrices, n x p and n x q, ``n >= 4``. Columns need not be centred (the
        estimator ignores feature shifts), but centring first is more accurate.

    Returns
    -------
    float
        HSIC_1(X, Y); it can be slightly negative.
    """
    n = x.shape[0]
    a, b = x.square().sum(dim=1), y.square().sum(dim=1)
    s_x, s_y = x.sum(dim=0), y.sum(dim=0)
    trace_kl = float(torch.linalg.matrix_norm(x.T @ y)) ** 2 - float(a @ b)
    sum_k = float(s_x @ s_x - a.sum())
    sum_l = float(s_y @ s_y - b.sum())
    row_k, row_l = x @ s_x - a, y @ s_y - b
    cross = float(row_k @ row_l)
    return (trace_kl + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 * cross / (n - 2)) / (n * (n - 3))


def _hsic1_terms(
    x: torch.Tensor, y: torch.Tensor, space: Literal["feature", "gram"]
) -> tuple[float, float, float]:
    """(HSIC_1(X, Y), HSIC_1(X, X), HSIC_1(Y, Y)) of linear kernels of x, y (n >= 4) in the chosen space."""
    # Gram space: inner products of the U-centred Gram matrices over n (n - 3); feature space: hsic1_feature.
    if space == "feature":
        return hsic1_feature(x, y), hsic1_feature(x, x), hsic1_feature(y, y)
    scale = x.shape[0] * (x.shape[0] - 3)
    Ku, Lu = u_centre_(x @ x.T).reshape(-1), u_centre_(y @ y.T).reshape(-1)
    return float(Ku @ Lu) / scale, float(Ku @ Ku) / scale, float(Lu @ Lu) / scale


def _require_rows(n: int, measure: str, what: str = "rows") -> None:
    """Refuse fewer rows than the unbiased HSIC estimator divides by."""
    if n < MIN_ROWS_UNBIASED:
        raise ValueError(
            f"{measure}: the unbiased HSIC estimator needs at least {MIN_ROWS_UNBIASED} {what} "
            f"(it divides by n(n-3)), got {n}"
        )


def debiased_cka(X: ArrayLike, Y: ArrayLike, space: Space = "auto") -> float:
    """Debiased linear CKA: the CKA ratio with the unbiased HSIC estimator (Song et al. 2012).

    Removes the upward bias of linear CKA when n is not much larger than the widths (unrelated random
    matrices score near 0 instead of near 1). Symmetric; 1 for identical inputs; may be slightly negative.
    Invariant to orthogonal maps and isotropic scaling of either side.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q, ``n >= 4``.
    space
        As in `linear_cka`: ``"feature"`` computes the unbiased HSIC from p x q products (see
        `hsic1_feature`), ``"gram"`` from U-centred n x n Gram matrices (see `u_centre_`), ``"auto"`` picks
        feature space when ``n > max(p, q)``.

    Returns
    -------
    float
        Debiased CKA, at most 1.

    Raises
    ------
    ValueError
        For malformed input, fewer than 4 rows, an unknown `space`, when X or Y is constant in every neuron,
        or when an unbiased self-term ``HSIC_1(X, X)`` or ``HSIC_1(Y, Y)`` is not positive.
    """
    x, y = as_pair(X, Y)
    _require_rows(x.shape[0], "debiased_cka")
    require_variation(x, "X", "debiased_cka")
    require_variation(y, "Y", "debiased_cka")
    x, y = centre(x), centre(y)
    chosen = _resolve_space(space, x.shape[0], x.shape[1], y.shape[1], "debiased_cka")
    xy, xx, yy = _hsic1_terms(x, y, chosen)
    return _ratio(xy, xx, yy, "debiased_cka")


class MinibatchCKA:
    """Minibatch linear CKA (Nguyen et al. 2021): stream minibatches, take the ratio at the end.

    ``CKA = sum_b HSIC_1(K_b, L_b) / sqrt(sum_b HSIC_1(K_b, K_b) * sum_b HSIC_1(L_b, L_b))``, with HSIC_1 the
    unbiased estimator on minibatch b's rows. Memory depends on the batch, never on the total n. Each batch
    needs at least 4 rows; X and Y batches must hold the same rows (same words) in the same order.

    Attributes
    ----------
    hsic_xy : float
        HSIC_1(X, Y) summed over the batches added so far.
    hsic_xx : float
        HSIC_1(X, X) summed over the batches added so far.
    hsic_yy : float
        HSIC_1(Y, Y) summed over the batches added so far.
    n_batches : int
        Batches added so far.
    n_rows : int
        Rows added so far, over all batches.

    Examples
    --------
    >>> acc = MinibatchCKA()
    >>> for xb, yb in batches:            # doctest: +SKIP
    ...     acc.update(xb, yb)
    >>> acc.result()                      # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.hsic_xy = 0.0
        self.hsic_xx = 0.0
        self.hsic_yy = 0.0
        self.n_batches = 0
        self.n_rows = 0

    def update(self, X_batch: ArrayLike, Y_batch: ArrayLike) -> None:
        """Add one minibatch's unbiased HSIC_1 terms.

        Parameters
        ----------
        X_batch, Y_batch
            The same rows (words, in the same order) of X and of Y, at least 4 of them.

        Raises
        ------
        ValueError
            For malformed input, a row-count mismatch or fewer than 4 rows.
        """
        x, y = as_pair(X_batch, Y_batch, min_rows=1)
        self._add(x, y)

    def _add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """update() on already validated float64 tensors."""
        _require_rows(x.shape[0], "minibatch_cka", what="rows per minibatch")
        x, y = centre(x), centre(y)
        space = _resolve_space("auto", x.shape[0], x.shape[1], y.shape[1], "minibatch_cka")
        xy, xx, yy = _hsic1_terms(x, y, space)
        self.hsic_xy += xy
        self.hsic_xx += xx
        self.hsic_yy += yy
        self.n_batches += 1
        self.n_rows += x.shape[0]

    def result(self) -> float:
        """The minibatch CKA of everything added so far.

        Returns
        -------
        float
            The CKA ratio of the summed HSIC_1 terms.

        Raises
        ------
        ValueError
            If no minibatch was added, or a summed self-term is not positive.
        """
        if self.n_batches == 0:
            raise ValueError("minibatch_cka: no minibatch was added; call update() first")
        return _ratio(self.hsic_xy, self.hsic_xx, self.hsic_yy, "minibatch_cka")


def _minibatch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive batches of `batch_size` rows; a tail shorter than 4 rows joins the previous batch."""
    # The unbiased estimator is undefined below 4 rows, and dropping rows would lose data.
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < MIN_ROWS_UNBIASED:
        starts.pop()
    return [slice(s, starts[i + 1] if i + 1 < len(starts) else n) for i, s in enumerate(starts)]


def minibatch_cka(X: ArrayLike, Y: ArrayLike, batch_size: int = 256, seed: int | None = 0) -> float:
    """Minibatch CKA of X and Y (Nguyen et al. 2021) over row minibatches of `batch_size`.

    The rows are cut into consecutive batches and fed to a `MinibatchCKA`; a final batch of fewer than 4
    rows joins the previous one. Symmetric; invariant to orthogonal maps and isotropic scaling of either
    side.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q, ``n >= 4``.
    batch_size
        Rows per minibatch, an integer of at least 4.
    seed
        The rows are shuffled with this seed (the same order for X and Y) before batching, as in minibatch
        training; ``None`` keeps the stored order.

    Returns
    -------
    float
        Minibatch CKA, at most 1.

    Raises
    ------
    ValueError
        If `batch_size` is not an integer of at least 4; for malformed input, fewer than 4 rows, or a summed
        self-term that is not positive.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < MIN_ROWS_UNBIASED:
        raise ValueError(
            f"minibatch_cka: batch_size must be an integer >= {MIN_ROWS_UNBIASED}, got {batch_size!r}"
        )
    x, y = as_pair(X, Y, min_rows=1)
    _require_rows(x.shape[0], "minibatch_cka")
    if seed is not None:
        order = torch.from_numpy(np.random.default_rng(seed).permutation(x.shape[0])).to(x.device)
        x, y = x[order], y[order]
    acc = MinibatchCKA()
    for rows in _minibatch_slices(x.shape[0], batch_size):
        acc._add(x[rows], y[rows])
    return acc.result()


# ----------------------------------------------------------------------------------------------------------
# RBF CKA


def _median_of_all_entries(D: torch.Tensor) -> float:
    """numpy-style median (mean of the two middle values for an even count) of every entry of D."""
    flat = D.reshape(-1)
    count = flat.numel()
    upper = float(torch.kthvalue(flat, count // 2 + 1).values)
    if count % 2:
        return upper
    return 0.5 * (float(torch.kthvalue(flat, count // 2).values) + upper)


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


__all__ = [
    "MinibatchCKA",
    "debiased_cka",
    "gram_cka",
    "hsic1_feature",
    "linear_cka",
    "minibatch_cka",
    "rbf_cka",
    "rbf_gram",
    "u_centre_",
]
