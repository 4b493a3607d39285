"""Minibatch linear CKA (Nguyen et al. 2021): the unbiased HSIC terms summed over row minibatches.

``CKA = sum_b HSIC_1(K_b, L_b) / sqrt(sum_b HSIC_1(K_b, K_b) * sum_b HSIC_1(L_b, L_b))``, with HSIC_1 the
unbiased estimator (`reprsim.measures.hsic`) on minibatch b's rows, so memory never depends on n:
`MinibatchCKA` accumulates batches as they come, `minibatch_cka` cuts two whole matrices into batches.
"""

from __future__ import annotations

import numpy as np
import torch

from reprsim.arrays import ArrayLike, as_pair, centre

from .hsic import MIN_ROWS_UNBIASED, cka_ratio, hsic1_terms, require_rows, resolve_space


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
        require_rows(x.shape[0], "minibatch_cka", what="rows per minibatch")
        x, y = centre(x), centre(y)
        space = resolve_space("auto", x.shape[0], x.shape[1], y.shape[1], "minibatch_cka")
        xy, xx, yy = hsic1_terms(x, y, space)
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
        return cka_ratio(self.hsic_xy, self.hsic_xx, self.hsic_yy, "minibatch_cka")


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
    require_rows(x.shape[0], "minibatch_cka")
    if seed is not None:
        order = torch.from_numpy(np.random.default_rng(seed).permutation(x.shape[0])).to(x.device)
        x, y = x[order], y[order]
    acc = MinibatchCKA()
    for rows in _minibatch_slices(x.shape[0], batch_size):
        acc._add(x[rows], y[rows])
    return acc.result()


