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
    """Some neurons have zero variance; they were excluded from a neuron-level score.

    A constant neuron has no correlation with anything, so the measures that score neurons one by one
    (`reprsim.measures.maxsim`, `reprsim.measures.linreg`) leave it out instead of dividing by its zero
    spread, count it, and warn once per call with the counts for X and Y.
    """


class FewRowsWarning(UserWarning):
    """Too few rows for a CCA-type measure to be meaningful (``n < 10 * max(p, q)``).

    Any measure invariant to invertible linear maps tends to 1 as the rank of X approaches the number of
    rows n, so at such sizes its value says little about similarity.
    """


def as_matrix(X: ArrayLike, name: str = "X", device: torch.device | None = None) -> torch.Tensor:
    """Validate a representation matrix and return it as a float64 tensor on its own device.

    Parameters
    ----------
    X
        The representation, rows x neurons: a numpy array (or anything ``numpy.asarray`` reads, such as a
        memmap or a zarr slice) or a torch tensor, of any real numeric or boolean dtype, on any device.
    name
        What the error messages call the matrix.
    device
        Where to put the result; ``None`` keeps the input's device (CPU for numpy input).

    Returns
    -------
    torch.Tensor
        ``X`` as float64, detached from any autograd graph. When its largest magnitude lies outside
        ``2**-64 .. 2**64`` it is multiplied by an exact power of two that brings that magnitude near 1:
        every measure is invariant to isotropic scaling, and this keeps sums of fourth powers (linear CKA's
        ``||X^T Y||_F^2``) inside float64's range.

    Raises
    ------
    ValueError
        Naming `name`, for input that is not an array, is not 2-D, is empty, has a non-numeric or complex
        dtype, or holds NaN or Inf values (the message counts them and gives the first row).
    """
    source = matrix_tensor(X, name, device)
    # Convert before any arithmetic so float16 inputs never overflow in a sum of squares.
    t = source.to(torch.float64)
    # One min/max scan finds a NaN (it propagates) or an Inf and the largest magnitude together; float
    # input is scanned in its own dtype, whose values the conversion keeps exactly.
    low, high = torch.aminmax(source if source.is_floating_point() else t)
    low_value, high_value = float(low), float(high)
    if not (math.isfinite(low_value) and math.isfinite(high_value)):
        raise_non_finite(t, name)
    return _in_safe_range(t, max(-low_value, high_value))


# Values of magnitude within 2^-_SAFE_EXPONENT .. 2^_SAFE_EXPONENT keep fourth powers summed over many terms
# (linear CKA's ||X^T Y||_F^2) inside float64's range.
_SAFE_EXPONENT = 64


def _in_safe_range(t: torch.Tensor, largest: float) -> torch.Tensor:
    """``t``, or ``t`` times an exact power of two bringing its largest magnitude near 1 (see `as_matrix`)."""
    # Every measure is invariant to isotropic scaling, so rescaling changes no score; what it removes is the
    # overflow (a NaN, or a CKA of 0 at 1e76) or underflow (a spurious "no variation" at 1e-90).
    if largest == 0.0 or 2.0**-_SAFE_EXPONENT <= largest <= 2.0**_SAFE_EXPONENT:
        return t
    return t * 2.0 ** -math.frexp(largest)[1]


def matrix_tensor(X: ArrayLike, name: str = "X", device: torch.device | None = None) -> torch.Tensor:
    """Check type, shape and dtype as `as_matrix` does, without converting or scanning the values.

    Parameters
    ----------
    X
        The representation, rows x neurons (numpy array, array-like or torch tensor).
    name
        What the error messages call the matrix.
    device
        Where to put the result; ``None`` keeps the input's device.

    Returns
    -------
    torch.Tensor
        A view of ``X`` (or a copy on `device`) in the input's own dtype, detached from any autograd graph.
        The values are not checked: the caller checks finiteness, and `raise_non_finite` words the error.

    Raises
    ------
    ValueError
        Naming `name`, for input that is not an array, is not 2-D, is empty, or has a non-numeric or
        complex dtype.
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
    """Raise the error for a matrix that holds NaN or Inf: how many, and the first row holding one.

    Parameters
    ----------
    t
        The matrix (or one chunk of a stream of rows); it must hold at least one non-finite value.
    name
        What the message calls the matrix.
    first_row
        The row of the whole stream that ``t`` starts at; when non-zero the message gives the first bad row
        both in the stream and in this chunk.

    Raises
    ------
    ValueError
        Always.
    """
    bad = ~torch.isfinite(t)
    row = first_row + int(torch.nonzero(bad)[0, 0])
    where = f"row {row}" if first_row == 0 else f"row {row} of the stream, row {row - first_row} of this chunk"
    raise ValueError(f"{name} contains {int(bad.sum())} NaN or Inf value(s) (first in {where})")


def as_pair(X: ArrayLike, Y: ArrayLike, min_rows: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two row-aligned representation matrices (one row per word in both).

    Parameters
    ----------
    X, Y
        The representations, n x p and n x q (see `as_matrix` for the accepted inputs).
    min_rows
        The fewest rows the caller's measure is defined on.

    Returns
    -------
    x, y : torch.Tensor
        Both as float64 (see `as_matrix`); ``y`` is moved to ``x``'s device.

    Raises
    ------
    ValueError
        For malformed input (see `as_matrix`), when X and Y differ in their number of rows, or when they have
        fewer than `min_rows` rows.
    """
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
    """Machine epsilon of the input's own float type.

    This is the relative rounding every value already carries before the measures convert it to float64,
    so a float32 or float16 store cannot resolve directions below it.

    Parameters
    ----------
    X
        A numpy array, array-like or torch tensor.

    Returns
    -------
    float
        The epsilon of ``X``'s floating dtype; float64's for float64, integer and boolean input.
    """
    dtype = X.dtype if isinstance(X, torch.Tensor) else np.asarray(X).dtype
    if isinstance(dtype, torch.dtype):
        return float(torch.finfo(dtype).eps) if dtype.is_floating_point else float(np.finfo(np.float64).eps)
    return float(np.finfo(dtype).eps) if np.issubdtype(dtype, np.floating) else float(np.finfo(np.float64).eps)


def centre(X: torch.Tensor) -> torch.Tensor:
    """Subtract each column's mean.

    Parameters
    ----------
    X
        A matrix, rows x columns.

    Returns
    -------
    torch.Tensor
        A new matrix whose columns have mean zero.
    """
    return X - X.mean(dim=0, keepdim=True)


def constant_columns(X: torch.Tensor, spread: torch.Tensor | None = None) -> torch.Tensor:
    """Mark the columns with zero variance, up to rounding.

    A column is constant when the norm of its centred values is at most `CONSTANT_RTOL` times
    ``max |x| * sqrt(n)``, the norm it would have if every value had its largest magnitude.

    Parameters
    ----------
    X
        A float matrix, n rows x columns.
    spread
        The norms of X's centred columns when the caller has them (the root of a covariance's diagonal,
        say); computed here otherwise.

    Returns
    -------
    torch.Tensor
        Boolean mask with one entry per column, True for the constant ones.
    """
    if spread is None:
        spread = centre(X).square().sum(dim=0).sqrt()
    bound = CONSTANT_RTOL * X.shape[0] ** 0.5
    low, high = torch.aminmax(X)
    # A column's largest magnitude is at most the matrix's: only columns under that looser bound can be
    # constant, and only theirs is needed (a scan of every column costs more than the rest of the check).
    constant = spread <= bound * max(-float(low), float(high))
    candidates = torch.nonzero(constant).squeeze(1)
    if candidates.numel():
        constant[candidates] = spread[candidates] <= bound * X[:, candidates].abs().amax(dim=0)
    return constant


def warn_constant(n_x: int, n_y: int, measure: str) -> None:
    """Warn that constant neurons were excluded, if there were any.

    Parameters
    ----------
    n_x, n_y
        How many neurons of X and of Y were excluded as constant.
    measure
        The measure's name, which starts the message.

    Warns
    -----
    ConstantNeuronWarning
        When ``n_x`` or ``n_y`` is non-zero; the warning points at the caller of the measure that calls this.
    """
    if n_x or n_y:
        warnings.warn(
            f"{measure}: excluded {n_x} constant neuron(s) of X and {n_y} of Y (zero variance: no correlation)",
            ConstantNeuronWarning,
            stacklevel=3,
        )


def warn_few_rows(n: int, p: int, q: int, measure: str) -> None:
    """Warn when a CCA-type measure has fewer than ``10 * max(p, q)`` rows.

    Parameters
    ----------
    n
        Rows (words) compared.
    p, q
        Widths (neurons) of X and Y.
    measure
        The measure's name, which starts the message.

    Warns
    -----
    FewRowsWarning
        When ``n < 10 * max(p, q)``: CCA-type measures approach 1 as the rank reaches n; the warning points at
        the caller of the measure that calls this.
    """
    if n < 10 * max(p, q):
        warnings.warn(
            f"{measure}: n={n} rows is fewer than 10 x max(p={p}, q={q}); CCA-type measures approach "
            "1 as rank reaches n and say little about similarity here",
            FewRowsWarning,
            stacklevel=3,
        )
