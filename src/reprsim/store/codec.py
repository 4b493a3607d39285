"""Conversion between in-memory float arrays and the stored element types.

float32 and float16 are stored as themselves. bfloat16 (which numpy lacks) is stored as the upper 16 bits of
the float32 value, rounded to nearest-even, in a uint16 array; reads give float32 (exact, since every bfloat16
is a float32). Values that would overflow the stored type raise ValueError instead of becoming infinities.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DTYPES = ("float32", "float16", "bfloat16")
STORAGE_DTYPE: dict[str, np.dtype[Any]] = {
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(np.uint16),
}
# Largest finite value of each stored type.
MAX_FINITE = {
    "float32": float(np.finfo(np.float32).max),
    "float16": float(np.finfo(np.float16).max),
    "bfloat16": 3.3895313892515355e38,  # (2 - 2**-7) * 2**127
}
BF16_EXPONENT_MASK = np.uint16(0x7F80)


def check_dtype(dtype: str) -> str:
    """Validate a store dtype name.

    Parameters
    ----------
    dtype : str
        The name to check.

    Returns
    -------
    str
        The name, unchanged.

    Raises
    ------
    ValueError
        When it is not one of DTYPES.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


def float32_to_bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """Round float32 values to bfloat16, to nearest with ties to even.

    Parameters
    ----------
    values : numpy.ndarray
        Values convertible to float32.

    Returns
    -------
    numpy.ndarray
        The bfloat16 bit patterns, uint16, of the same shape.
    """
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> np.uint32(16)) & np.uint32(1)) + np.uint32(0x7FFF)
    return ((bits + rounding) >> np.uint32(16)).astype(np.uint16)


def bfloat16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """Widen bfloat16 bit patterns to float32 (exactly).

    Parameters
    ----------
    bits : numpy.ndarray
        bfloat16 bit patterns (uint16).

    Returns
    -------
    numpy.ndarray
        The float32 values, of the same shape.
    """
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def all_finite(array: np.ndarray) -> bool:
    """Tell whether no element is NaN or infinite.

    One summing pass instead of a boolean array the size of the data: a NaN or infinity makes the sum
    non-finite, and only then (or when finite values overflow the sum) is every element checked.

    Parameters
    ----------
    array : numpy.ndarray
        A float array.

    Returns
    -------
    bool
        True when every element is finite.
    """
    accumulator = np.float64 if array.dtype == np.float64 else np.float32
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(array, axis=None, dtype=accumulator)
    return bool(np.isfinite(total)) or bool(np.isfinite(array).all())


def encode(values: np.ndarray, dtype: str, what: str) -> np.ndarray:
    """Convert float values to the storage type of `dtype`, refusing NaN/Inf and overflow.

    Parameters
    ----------
    values : numpy.ndarray
        Float values.
    dtype : str
        The store dtype name (see DTYPES).
    what : str
        Names the data (layer, sentences) in error messages.

    Returns
    -------
    numpy.ndarray
        The stored values (the input itself when it is already of the storage type).

    Raises
    ------
    ValueError
        When the values are not floats, hold NaN or Inf, or overflow the storage type.
    """
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{what}: expected a float array, got dtype {array.dtype}")
    if not all_finite(array):
        raise ValueError(f"{what}: contains NaN or Inf values")
    if dtype == "bfloat16":
        stored = float32_to_bfloat16_bits(array.astype(np.float32))
        overflow = bool(((stored & BF16_EXPONENT_MASK) == BF16_EXPONENT_MASK).any())
    elif array.dtype == STORAGE_DTYPE[dtype]:
        stored, overflow = array, False  # already the stored type and finite: no copy
    else:
        with np.errstate(over="ignore"):
            stored = array.astype(STORAGE_DTYPE[dtype])
        overflow = not all_finite(stored)
    if overflow:
        largest = float(np.abs(array).max())
        advice = "; store this model as float32" if dtype != "float32" else ""
        raise ValueError(
            f"{what}: values up to {largest:.6g} overflow {dtype} (largest finite {MAX_FINITE[dtype]:.6g}){advice}"
        )
    return stored


def decode(stored: np.ndarray, dtype: str) -> np.ndarray:
    """Turn stored values back into floats: float32/float16 unchanged, bfloat16 widened to float32.

    Parameters
    ----------
    stored : numpy.ndarray
        Values as stored.
    dtype : str
        The store dtype name.

    Returns
    -------
    numpy.ndarray
        The float values.
    """
    if dtype == "bfloat16":
        return bfloat16_bits_to_float32(stored)
    return stored
