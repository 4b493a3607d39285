"""The argument checks of the cross-moment accumulators: device, GEMM precision, widths and requested blocks.

`CrossMoments`, `FoldMoments`, `StreamingSimilarity` and the all-pairs drivers take the same arguments; these
functions check them once, with errors that name the bad entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import torch

Precision = Literal["float64", "float32"]
# What a linear pass is asked for: a GEMM precision, or "auto" (`reprsim.engine.linear_fit.pass_precision`).
PrecisionChoice = Literal["auto", "float64", "float32"]
PairSpec = Literal["all"] | Iterable[tuple[int, int]]

PRECISIONS: tuple[str, ...] = ("float64", "float32")
PRECISION_CHOICES: tuple[str, ...] = ("auto", *PRECISIONS)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device to accumulate on.

    Parameters
    ----------
    device
        ``"auto"`` (CUDA when available, the CPU otherwise), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a
        `torch.device`.

    Returns
    -------
    torch.device
        The resolved device.

    Raises
    ------
    ValueError
        If the device is not one torch knows, or CUDA was requested but is not available.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available; use device='auto'")
    return resolved


def check_precision(precision: str) -> Precision:
    """Validate the GEMM precision.

    Parameters
    ----------
    precision
        ``"float64"``, or ``"float32"`` (float32 products added into float64 accumulators).

    Returns
    -------
    Precision
        The same string.

    Raises
    ------
    ValueError
        If it is neither.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision  # type: ignore[return-value]


def check_precision_choice(precision: str) -> PrecisionChoice:
    """Validate a linear pass's precision choice.

    Parameters
    ----------
    precision
        ``"auto"``, ``"float64"`` or ``"float32"``.

    Returns
    -------
    PrecisionChoice
        The same string.

    Raises
    ------
    ValueError
        If it is none of them.
    """
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {PRECISION_CHOICES}, got {precision!r}")
    return precision  # type: ignore[return-value]


def check_widths(widths: Sequence[int], what: str = "widths") -> list[int]:
    """Representation widths as a list of positive ints.

    Parameters
    ----------
    widths
        One width per representation.
    what
        What errors call the sequence.

    Returns
    -------
    list of int
        The widths.

    Raises
    ------
    ValueError
        If the sequence is empty or an entry is not a positive integer (naming the entry).
    """
    out = []
    for i, w in enumerate(widths):
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ValueError(f"{what}[{i}] must be a positive integer, got {w!r}")
        out.append(int(w))
    if not out:
        raise ValueError(f"{what} is empty: give at least one representation width")
    return out


def normalise_pairs(pairs: PairSpec, n_reps: int, diagonal: bool) -> list[tuple[int, int]]:
    """The blocks a study asks for, as sorted unique (a, b) with a <= b.

    Parameters
    ----------
    pairs
        ``"all"`` (every block) or (a, b) index pairs in either order.
    n_reps
        The number of representations.
    diagonal
        Add the diagonal block (a, a) of every representation (every pair measure needs both of its
        representations' own blocks). ``"all"`` includes them anyway.

    Returns
    -------
    list of tuple of (int, int)
        The blocks.

    Raises
    ------
    ValueError
        If `pairs` is a string other than ``"all"``, a pair is not two indices, or an index is out of range.
    """
    if isinstance(pairs, str):
        if pairs != "all":
            raise ValueError(f"pairs must be 'all' or a list of (a, b) index pairs, got {pairs!r}")
        return [(a, b) for a in range(n_reps) for b in range(a, n_reps)]
    blocks: set[tuple[int, int]] = set()
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"each pair must be two representation indices, got {pair!r}")
        a, b = pair
        for i in (a, b):
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_reps:
                raise ValueError(f"pair {pair!r}: index {i!r} is not in 0..{n_reps - 1}")
        blocks.add((min(a, b), max(a, b)))
    if diagonal:
        blocks.update((a, a) for a in range(n_reps))
    return sorted(blocks)
