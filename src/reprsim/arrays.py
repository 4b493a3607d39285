"""The input convention shared by the measures and the engine: arrays in, validated float64 tensors out.

Every measure accepts numpy arrays or torch tensors (any float dtype, CPU or GPU) and computes in float64
on the input's device. Validation happens here, once, so that bad input fails with a message naming the
problem instead of a NaN or a traceback from inside a decomposition.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NoReturn

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
    # Convert before any arithmetic so float16 inputs never overflow in a sum of squares.
    t = matrix_tensor(X, name, device).to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise_non_finite(t, name)
    return in_safe_range(t)


# Values of magnitude within 2^-SAFE_EXPONENT .. 2^SAFE_EXPONENT keep fourth powers summed over many terms
# (linear CKA's ||X^T Y||_F^2) inside float64's range.
SAFE_EXPONENT = 64


def in_safe_range(t: torch.Tensor) -> torch.Tensor:
    """t, or t times a power of two (exact) that brings its largest magnitude near 1 when that lies outside
    2^-64 .. 2^64. Every measure is invariant to isotropic scaling, so only the overflow (a NaN, or a CKA of
    0 at 1e76) or underflow (a spurious "no variation" at 1e-90) goes."""
    largest = float(t.abs().max()) if t.numel() else 0.0
    if largest == 0.0 or 2.0**-SAFE_EXPONENT <= largest <= 2.0**SAFE_EXPONENT:
        return t
    return t * 2.0 ** -math.frexp(largest)[1]


def matrix_tensor(X: ArrayLike, name: str = "X", device: torch.device | None = None) -> torch.Tensor:
    """`as_matrix`'s checks of type, shape and dtype, without converting or scanning the values.

    Returns a torch view (or device copy) in the input's own dtype; the caller checks finiteness
    (`raise_non_finite` words the error).
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
    return t if device is None else t.to(device)


def raise_non_finite(t: torch.Tensor, name: str, first_row: int = 0) -> NoReturn:
    """The error for a matrix holding NaN or Inf: how many, and the first row (counted from first_row, the
    row t starts at in a stream of chunks)."""
    bad = ~torch.isfinite(t)
    row = first_row + int(torch.nonzero(bad)[0, 0])
    where = f"row {row}" if first_row == 0 else f"row {row} of the stream, row {row - first_row} of this chunk"
    raise ValueError(f"{name} contains {int(bad.sum())} NaN or Inf value(s) (first in {where})")


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


def input_eps(X: ArrayLike) -> float:
    """Machine epsilon of the input's own float type (float64's for float64 and integer input): the relative
    rounding every value already carries before the measures convert it to float64."""
    dtype = X.dtype if isinstance(X, torch.Tensor) else np.asarray(X).dtype
    if isinstance(dtype, torch.dtype):
        return float(torch.finfo(dtype).eps) if dtype.is_floating_point else float(np.finfo(np.float64).eps)
    return float(np.finfo(dtype).eps) if np.issubdtype(dtype, np.floating) else float(np.finfo(np.float64).eps)


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
