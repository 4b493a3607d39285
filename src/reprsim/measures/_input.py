"""Input validation and conversion shared by every measure.

Every measure accepts numpy arrays or torch tensors (any float dtype, CPU or GPU) and computes in float64
on the input's device. Validation happens here, once, so that bad input fails with a message naming the
problem instead of a NaN or a traceback from inside a decomposition.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

ArrayLike = Any  # numpy.ndarray | torch.Tensor; kept loose so users may pass memmaps and zarr slices

# Relative tolerance under which a column counts as constant (zero variance): spread below this fraction
# of the column's magnitude is rounding, not signal.
CONSTANT_RTOL = 1e-10


class ConstantNeuronWarning(UserWarning):
    """Some neurons have zero variance; they were excluded from a neuron-level score."""


class FewRowsWarning(UserWarning):
    """Too few rows for a CCA-type measure to be meaningful (n < 10 * max(p, q))."""


def as_matrix(X: ArrayLike, name: str = "X", device: torch.device | None = None) -> torch.Tensor:
    """Validate a representation matrix and return it as float64 torch on its own device.

    Raises ValueError naming `name` for: non-array input, non-2-D arrays, empty arrays, non-numeric or
    complex dtypes, and NaN or Inf values.
    """
    if isinstance(X, torch.Tensor):
        t = X.detach()
    else:
        try:
            arr = np.asarray(X)
        except Exception as exc:  # objects numpy cannot view as an array
            raise ValueError(f"{name} is not an array: {type(X).__name__}") from exc
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
        if np.iscomplexobj(arr):
            raise ValueError(f"{name} must be real-valued, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex():
        raise ValueError(f"{name} must be real-valued, got dtype {t.dtype}")
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows x neurons), got {t.ndim}-D with shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(t.shape)}")
    if device is not None:
        t = t.to(device)
    # Convert before any arithmetic so float16 inputs never overflow in a sum of squares.
    t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        row = int(torch.nonzero(~torch.isfinite(t))[0, 0])
        raise ValueError(f"{name} contains {bad} NaN or Inf value(s) (first in row {row})")
    return t


def as_pair(X: ArrayLike, Y: ArrayLike, min_rows: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two row-aligned matrices; Y is moved to X's device."""
    x = as_matrix(X, "X")
    y = as_matrix(Y, "Y", device=x.device)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"X and Y must have the same number of rows (one per word), got {x.shape[0]} and {y.shape[0]}"
        )
    if x.shape[0] < min_rows:
        raise ValueError(f"need at least {min_rows} rows, got {x.shape[0]}")
    return x, y


def centre(X: torch.Tensor) -> torch.Tensor:
    """Subtract each column's mean."""
    return X - X.mean(dim=0, keepdim=True)


def constant_columns(X: torch.Tensor) -> torch.Tensor:
    """Boolean mask of columns with zero variance (up to rounding)."""
    spread = centre(X).norm(dim=0)
    scale = X.abs().amax(dim=0) * (X.shape[0] ** 0.5)
    return spread <= CONSTANT_RTOL * scale


def warn_constant(n_x: int, n_y: int, measure: str) -> None:
    if n_x or n_y:
        warnings.warn(
            f"{measure}: excluded {n_x} constant neuron(s) of X and {n_y} of Y (zero variance: no correlation)",
            ConstantNeuronWarning,
            stacklevel=3,
        )


def warn_few_rows(n: int, p: int, q: int, measure: str) -> None:
    if n < 10 * max(p, q):
        warnings.warn(
            f"{measure}: n={n} rows is fewer than 10 x max(p={p}, q={q}); CCA-type measures approach "
            "1 as rank reaches n and say little about similarity here",
            FewRowsWarning,
            stacklevel=3,
        )
