"""Seeded row subsamples shared by the n x n measures (RBF CKA, RSA, mutual k-NN)."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from reprsim.arrays import ArrayLike, as_pair


class SubsampleWarning(UserWarning):
    """An n x n measure ran on a seeded random subset of the rows; its value is an estimate.

    `reprsim.measures.rbf_cka`, `reprsim.measures.rsa` and `reprsim.measures.mutual_knn` build n x n
    matrices, so when n exceeds their ``max_rows`` they compare ``max_rows`` rows drawn with their ``seed``,
    the same rows for X and Y, and emit this warning.
    """


def subsample_indices(n: int, max_rows: int | None, seed: int, measure: str) -> np.ndarray | None:
    """Choose the rows of a seeded subsample.

    The choice depends only on ``(n, max_rows, seed)``, so every pair of representations of one corpus is
    compared on the same rows.

    Parameters
    ----------
    n
        Rows of the input.
    max_rows
        The most rows to keep; ``None`` keeps them all.
    seed
        Seed of the random choice.
    measure
        The measure's name, which starts the messages.

    Returns
    -------
    numpy.ndarray or None
        Sorted indices of the ``max_rows`` kept rows, or ``None`` when all ``n`` rows are kept
        (``max_rows`` is ``None`` or at least ``n``).

    Raises
    ------
    ValueError
        If `max_rows` is neither ``None`` nor an integer of at least 2.

    Warns
    -----
    SubsampleWarning
        When it subsamples, because the value is then an estimate from ``max_rows`` of the ``n`` rows.
    """
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 2):
        raise ValueError(f"{measure}: max_rows must be an integer >= 2 or None, got {max_rows!r}")
    if max_rows is None or n <= max_rows:
        return None
    rows = np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
    warnings.warn(
        f"{measure}: n={n} rows exceed max_rows={max_rows}; computed on a seeded random subsample of "
        f"{max_rows} rows (seed={seed}), the same rows for X and Y",
        SubsampleWarning,
        stacklevel=4,  # the user's call of the measure (measure -> as_subsampled_pair -> here)
    )
    return rows


def _take_rows(A: ArrayLike, rows: np.ndarray) -> ArrayLike:
    """Rows `rows` of a torch tensor or an array-like (numpy, memmap, zarr) without converting all of it."""
    if isinstance(A, torch.Tensor):
        return A[torch.from_numpy(rows).to(A.device)]
    return A[rows] if hasattr(A, "__getitem__") and hasattr(A, "shape") else np.asarray(A)[rows]


def as_subsampled_pair(
    X: ArrayLike, Y: ArrayLike, max_rows: int | None, seed: int, measure: str, min_rows: int = 2
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray | None]:
    """Validate X and Y and keep the same seeded subsample of rows of both (see `subsample_indices`).

    Rows are selected before the float64 conversion, so a large float16 store slice is never copied whole.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.
    max_rows
        The most rows to keep; ``None`` keeps them all.
    seed
        Seed of the row choice.
    measure
        The measure's name, which starts the messages.
    min_rows
        The fewest rows the measure is defined on.

    Returns
    -------
    x, y : torch.Tensor
        The kept rows of X and Y as float64 (see `reprsim.arrays.as_pair`).
    rows : numpy.ndarray or None
        The original indices of the kept rows, or ``None`` when every row was kept.

    Raises
    ------
    ValueError
        For a bad `max_rows`, malformed input, a row-count mismatch or fewer than `min_rows` rows.

    Warns
    -----
    SubsampleWarning
        When it subsamples.
    """
    n_x = int(np.shape(X)[0]) if np.ndim(X) >= 1 else 0
    n_y = int(np.shape(Y)[0]) if np.ndim(Y) >= 1 else 0
    rows = subsample_indices(n_x, max_rows, seed, measure) if n_x == n_y else None
    if rows is not None:
        X, Y = _take_rows(X, rows), _take_rows(Y, rows)
    x, y = as_pair(X, Y, min_rows=min_rows)  # raises on a row-count mismatch or malformed input
    return x, y, rows
