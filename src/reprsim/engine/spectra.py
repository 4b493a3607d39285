"""Spectra of covariance-like matrices and SVCCA's options: the per-representation decompositions' building blocks.

`spectrum` is the one eigendecomposition routine of the engine (descending eigenvalues and a numerical rank
from `eigen_rank_tolerance`); `SvccaOptions` and `kept_count` say how many directions SVCCA keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

SvccaConvention = Literal["raghu", "wu"]


@dataclass(frozen=True)
class SvccaOptions:
    """SVCCA's options, as in `reprsim.measures.svcca`: kept variance fraction, k rule, standardising.

    Parameters
    ----------
    keep
        Fraction of variance each side keeps, in (0, 1].
    convention
        How k is chosen. ``"raghu"``: the smallest count whose cumulative variance fraction reaches `keep`.
        ``"wu"``: the count of directions whose cumulative fraction is strictly below `keep`, at least 1.
    standardize
        Divide each centred neuron by its standard deviation before reducing. ``None`` follows the
        convention (True for ``"wu"``, False for ``"raghu"``).

    Raises
    ------
    ValueError
        If `keep` is not a fraction in (0, 1] or `convention` is unknown.
    """

    keep: float = 0.99
    convention: SvccaConvention = "raghu"
    standardize: bool | None = None

    def __post_init__(self) -> None:
        keep = self.keep
        if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0.0 < float(keep) <= 1.0:
            raise ValueError(f"svcca: keep must be a fraction in (0, 1], got {keep!r}")
        if self.convention not in ("raghu", "wu"):
            raise ValueError(f"svcca: convention must be 'raghu' or 'wu', got {self.convention!r}")

    @property
    def standardized(self) -> bool:
        """Whether the neurons are standardised: `standardize`, or the convention's default when it is None."""
        return self.convention == "wu" if self.standardize is None else bool(self.standardize)


def eigen_rank_tolerance(width: int) -> float:
    """Relative eigenvalue threshold for a numerical rank.

    An eigendecomposition of a float64 d x d covariance resolves eigenvalues only down to about d * eps of
    the largest; anything below is rounding of a zero (a constant, duplicated or n <= p direction).

    Parameters
    ----------
    width
        d, the matrix's size.

    Returns
    -------
    float
        ``10 * width * eps`` (float64 eps): eigenvalues at most this fraction of the largest do not count.
    """
    return 10.0 * width * torch.finfo(torch.float64).eps


@dataclass(frozen=True)
class Spectrum:
    """Eigendecomposition of a symmetric positive semi-definite matrix, largest eigenvalue first.

    Parameters
    ----------
    values
        All eigenvalues, descending.
    vectors
        The matching unit eigenvectors (columns).
    rank
        How many eigenvalues exceed `eigen_rank_tolerance` of the largest (the numerical range is
        ``vectors[:, :rank]``).
    """

    values: torch.Tensor
    vectors: torch.Tensor
    rank: int


def spectrum(matrix: torch.Tensor, what: str) -> Spectrum:
    """Eigendecomposition of a covariance-like matrix, with its numerical rank.

    Parameters
    ----------
    matrix
        A symmetric positive semi-definite float64 matrix.
    what
        What errors call the matrix.

    Returns
    -------
    Spectrum
        Eigenvalues and eigenvectors, largest first, and the rank.

    Raises
    ------
    ValueError
        If the decomposition does not converge, returns non-finite values, or the rank is 0 (no variance),
        naming `what`.
    """
    try:
        values, vectors = torch.linalg.eigh(matrix)
    except torch.linalg.LinAlgError as exc:
        raise ValueError(f"the eigendecomposition of {what} did not converge ({exc})") from exc
    if not (bool(torch.isfinite(values).all()) and bool(torch.isfinite(vectors).all())):
        raise ValueError(f"the eigendecomposition of {what} returned non-finite values")
    values, vectors = values.flip(0), vectors.flip(1)
    top = float(values[0]) if values.numel() else 0.0
    rank = int((values > eigen_rank_tolerance(matrix.shape[0]) * top).sum()) if top > 0.0 else 0
    if rank == 0:
        raise ValueError(f"{what} has numerical rank 0 (no variance)")
    return Spectrum(values, vectors, rank)


def kept_count(values: torch.Tensor, rank: int, keep: float, convention: SvccaConvention) -> int:
    """SVCCA's k from variances (descending) over the numerical rank, as `reprsim.measures.svcca` decides.

    "raghu": the smallest count whose cumulative fraction reaches `keep`; "wu": the count of directions
    whose cumulative fraction is strictly below `keep`, at least 1.
    """
    cumulative = values[:rank].cumsum(0)
    below = int((cumulative / cumulative[-1] < keep).sum())
    return min(below + 1, rank) if convention == "raghu" else max(below, 1)
