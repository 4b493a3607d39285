"""Per-representation fits of the linear measures: everything a pair needs from one representation alone.

`LinearFit` holds a representation's centred covariance (from the engine's one pass, `CrossMoments`) and,
computed once on first use, its eigendecompositions, whitener, SVCCA basis and PWCCA loadings. Every pair a
representation is in reuses them (`reprsim.engine.linear_score`), so a pair pays only for its cross terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Generic, Literal, TypeVar

import torch

from reprsim.arrays import CONSTANT_RTOL

from .moments import CrossMoments

T = TypeVar("T")
SvccaConvention = Literal["raghu", "wu"]

# Measures the engine derives; directed ones return Directed values (see `DIRECTED_MEASURES`).
ENGINE_MEASURES: tuple[str, ...] = (
    "maxsim",
    "linreg",
    "r2_lr",
    "cca_r2",
    "cca_rho",
    "svcca",
    "pwcca",
    "linear_cka",
    "debiased_cka",
    "procrustes",
    "procrustes_distance",
    "angular_distance",
)
DIRECTED_MEASURES = frozenset({"maxsim", "linreg", "r2_lr", "pwcca"})
CCA_TYPE_MEASURES = frozenset({"cca_r2", "cca_rho", "svcca", "pwcca"})
MIN_ROWS_UNBIASED = 4


@dataclass(frozen=True)
class Directed(Generic[T]):
    """Both directions of a directed measure of a pair (a, b).

    In `StreamingSimilarity` a is X and b is Y, so `a_to_b` is the one-shot f(X, Y).

    Parameters
    ----------
    a_to_b
        sim(a -> b): the value with a as the first argument of the one-shot function.
    b_to_a
        sim(b -> a).
    """

    a_to_b: T
    b_to_a: T


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


def _kept_count(values: torch.Tensor, rank: int, keep: float, convention: SvccaConvention) -> int:
    """SVCCA's k from variances (descending) over the numerical rank, as `reprsim.measures.svcca` decides.

    "raghu": the smallest count whose cumulative fraction reaches `keep`; "wu": the count of directions
    whose cumulative fraction is strictly below `keep`, at least 1.
    """
    cumulative = values[:rank].cumsum(0)
    below = int((cumulative / cumulative[-1] < keep).sum())
    return min(below + 1, rank) if convention == "raghu" else max(below, 1)


class LinearFit:
    """Everything about one representation that its pairs share, computed once (netrep-style fit once).

    Built from its centred block C = X_c^T X_c, the row count and the column-wise max |x|, with the
    constant-neuron rule of `reprsim.measures`: a neuron is constant when its centred norm is at most 1e-10
    of max|x| sqrt(n). The decompositions are computed on first use and cached: `correlation` (eigh of the
    correlation matrix of the varying neurons: CCA, PWCCA, linreg, R2_LR) and `covariance_spectrum` (eigh of
    C over the varying neurons: SVCCA without standardising); `drop_decompositions` forgets them once the
    pair-level factors are built.

    Parameters
    ----------
    covariance
        C = X_c^T X_c (d x d, any common scale with the pairs' cross blocks).
    n
        The number of rows.
    column_absmax
        (d,) column-wise max |x| of the uncentred values.
    norm_product
        sum_i |x_i - mean|^4, which debiased CKA needs (``None`` when it is not computed).
    name
        How errors name the representation.

    Attributes
    ----------
    width
        d, the number of neurons.
    variances
        (d,) the diagonal of C, clipped at 0.
    constant
        (d,) bool, True for constant neurons.
    varying
        Indices of the varying neurons.
    n_constant
        The number of constant neurons.
    frobenius
        ||C||_F.
    trace
        tr C.

    Raises
    ------
    ValueError
        If `covariance` is not square.
    """

    def __init__(
        self,
        covariance: torch.Tensor,
        n: int,
        column_absmax: torch.Tensor,
        norm_product: float | None = None,
        name: str = "X",
    ) -> None:
        if covariance.ndim != 2 or covariance.shape[0] != covariance.shape[1]:
            raise ValueError(f"{name}: covariance must be square, got shape {tuple(covariance.shape)}")
        self.name = name
        self.n = int(n)
        self.width = int(covariance.shape[0])
        self.covariance = covariance.to(torch.float64)
        self.variances = torch.diagonal(self.covariance).clamp(min=0.0)
        spread = self.variances.sqrt()
        self.constant = spread <= CONSTANT_RTOL * column_absmax.to(spread) * math.sqrt(self.n)
        self.varying = torch.nonzero(~self.constant).squeeze(1)
        self.n_constant = int(self.constant.sum())
        self.frobenius = float(torch.linalg.matrix_norm(self.covariance))
        self.trace = float(self.variances.sum())
        self.norm_product = norm_product

    @classmethod
    def from_moments(cls, moments: CrossMoments, a: int, name: str | None = None) -> LinearFit:
        """The fit of one representation of a `CrossMoments`.

        Parameters
        ----------
        moments
            Moments holding the representation's diagonal block (a, a).
        a
            The representation's index.
        name
            How errors name it (default: ``"representation <a>"``).

        Returns
        -------
        LinearFit
            The fit, with ``norm_product`` when the moments keep row norms.

        Raises
        ------
        KeyError
            If the diagonal block was not accumulated.
        ValueError
            If the representation saw no rows or fewer than 2 (see `CrossMoments.centred`).
        """
        norm_product = moments.centred_norm_product(a, a) if moments.row_norms else None
        return cls(
            moments.centred(a, a),
            moments.n_rows(a),
            moments.column_absmax(a),
            norm_product=norm_product,
            name=name if name is not None else f"representation {a}",
        )

    def require_varying(self, measure: str) -> None:
        """Check that some neuron varies: with none, the representation has nothing to compare.

        Parameters
        ----------
        measure
            The measure that needs it, for the message.

        Raises
        ------
        ValueError
            If every neuron is constant (zero variance).
        """
        if self.n_constant == self.width:
            raise ValueError(
                f"{measure}: every neuron of {self.name} is constant (zero variance); the similarity is undefined"
            )

    @cached_property
    def varying_covariance(self) -> torch.Tensor:
        """C restricted to the varying neurons (C itself when every neuron varies)."""
        return self.on_varying(self.covariance, self)

    def on_varying(self, matrix: torch.Tensor, other: LinearFit) -> torch.Tensor:
        """A pair's matrix restricted to both sides' varying neurons.

        Parameters
        ----------
        matrix
            This width x the other's width.
        other
            The fit of the columns' representation.

        Returns
        -------
        torch.Tensor
            Varying x other's varying; `matrix` itself, uncopied, when every neuron of both varies (the usual
            case: a copy per pair of a 768 x 768 block adds up in a study).
        """
        if self.n_constant == 0 and other.n_constant == 0:
            return matrix
        return matrix[self.varying][:, other.varying]

    def drop_decompositions(self) -> None:
        """Forget the spectra the pair-level factors (whitener, loadings, SVCCA bases) were built from.

        Pairs use only the factors; anything that asks for a spectrum again recomputes it. A study keeps
        one of these per representation while it derives every pair, so this bounds its memory.
        """
        for name in ("varying_covariance", "correlation", "covariance_spectrum"):
            self.__dict__.pop(name, None)

    @cached_property
    def varying_scale(self) -> torch.Tensor:
        """Sqrt of the variances (centred norms) of the varying neurons."""
        return self.variances[self.varying].sqrt()

    @cached_property
    def correlation(self) -> Spectrum:
        """Spectrum of the correlation matrix D^-1/2 C D^-1/2 of the varying neurons.

        The one-shot CCA and regression measures decide ranks on unit-norm columns; the correlation matrix is
        their Gram matrix, so the same scale-free rank decision is made here.
        """
        self.require_varying("cca")
        scale = self.varying_scale
        return spectrum(self.varying_covariance / torch.outer(scale, scale), f"the correlations of {self.name}")

    @cached_property
    def covariance_spectrum(self) -> Spectrum:
        """Spectrum of C over the varying neurons (SVCCA's singular directions of the centred data)."""
        self.require_varying("svcca")
        return spectrum(self.varying_covariance, f"the covariance of {self.name}")

    @cached_property
    def whitener(self) -> torch.Tensor:
        """W (rank x varying): maps centred varying neurons to orthonormal coordinates, W C W^T = I.

        W = L^-1/2 V^T D^-1/2 from the correlation spectrum on its numerical range (ValueError when every
        neuron is constant or the decomposition fails).
        """
        s = self.correlation
        r = s.rank
        return (s.vectors[:, :r] / s.values[:r].sqrt()).T / self.varying_scale

    @cached_property
    def loadings(self) -> torch.Tensor:
        """C W^T = D^1/2 V L^1/2 (varying x rank): the centred neurons' inner products with unit coordinates.

        PWCCA's weights are sums of |loadings @ U| over the neurons.
        """
        s = self.correlation
        r = s.rank
        return (s.vectors[:, :r] * s.values[:r].sqrt()) * self.varying_scale[:, None]

    def svcca_basis(self, options: SvccaOptions) -> torch.Tensor:
        """B (k x varying): the top-k SVCCA directions as orthonormal coordinates (B C B^T = I_k).

        Cached per set of options; kept by `drop_decompositions`.

        Parameters
        ----------
        options
            SVCCA's kept variance fraction, k rule and standardising.

        Returns
        -------
        torch.Tensor
            k x (number of varying neurons), float64.

        Raises
        ------
        ValueError
            If every neuron is constant or the decomposition fails.
        """
        cache = self.__dict__.setdefault("_svcca_bases", {})
        key = (float(options.keep), options.convention, options.standardized)
        if key not in cache:
            if options.standardized:
                s = self.correlation
                k = _kept_count(s.values, s.rank, options.keep, options.convention)
                cache[key] = (s.vectors[:, :k] / s.values[:k].sqrt()).T / self.varying_scale
            else:
                s = self.covariance_spectrum
                k = _kept_count(s.values, s.rank, options.keep, options.convention)
                cache[key] = (s.vectors[:, :k] / s.values[:k].sqrt()).T
        basis: torch.Tensor = cache[key]
        return basis
