"""Per-representation fits of the linear measures: everything a pair needs from one representation alone.

`LinearFit` holds a representation's centred covariance (from the engine's one pass, `CrossMoments`) and,
computed once on first use, its eigendecompositions, whitener, SVCCA basis and PWCCA loadings. Every pair a
representation is in reuses them (`reprsim.engine.linear_score`), so a pair pays only for its cross terms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Generic, TypeVar

import torch

from reprsim.arrays import CONSTANT_RTOL
from reprsim.measures import registry
from reprsim.measures.shape import whitening_weights
from reprsim.measures.spectral import gulp_weights

from .checks import Precision, PrecisionChoice, check_precision_choice
from .moments import CrossMoments

if TYPE_CHECKING:  # annotations only: block_moments builds on moments
    from .block_moments import MomentSums
from .spectra import Spectrum, SvccaConvention, SvccaOptions, eigen_rank_tolerance, kept_count, spectrum

T = TypeVar("T")

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
    # derived from the same blocks (reprsim.engine.block_score)
    "shape_metric",
    "bures_distance",
    "gulp",
    "hard_matching",
    "soft_matching_distance",
    "ensd",
    "eigenspace_overlap",
    "lange_cka",
    "magnitude_difference",
)
DIRECTED_MEASURES = frozenset({"maxsim", "linreg", "r2_lr", "pwcca"})
CCA_TYPE_MEASURES = frozenset({"cca_r2", "cca_rho", "svcca", "pwcca"})
MIN_ROWS_UNBIASED = 4
# Measures whose float32-pass error does not grow with a representation's conditioning: bounded ratios of
# Frobenius and nuclear norms of the blocks, correlation maxima and assignments, each perturbed by about the
# blocks' relative rounding (1e-9 to 1e-7 on the strained cases of tests/test_engine_precision.py).
# Whitening measures (the CCA family, linreg, GULP, the shape metric) err by that rounding times a condition
# number, and unbounded values (ENSD's effective dimensions, Bures and magnitude distances) by it times their
# scale, so "auto" gives them float64 (docs: guide/comparison).
FLOAT32_EXACT_MEASURES = frozenset({
    "maxsim", "linear_cka", "debiased_cka", "lange_cka", "procrustes", "procrustes_distance", "angular_distance",
    "hard_matching",
})
# Measures that need the row-norm sums (CrossMoments(row_norms=True)).
ROW_NORM_MEASURES = frozenset({"debiased_cka", "lange_cka"})


__all__ = [
    "CCA_TYPE_MEASURES", "DIRECTED_MEASURES", "ENGINE_MEASURES", "FLOAT32_EXACT_MEASURES", "MIN_ROWS_UNBIASED",
    "ROW_NORM_MEASURES", "Directed", "LinearFit", "Spectrum", "SvccaConvention", "SvccaOptions",
    "eigen_rank_tolerance", "needs_row_norms", "pass_precision", "spectrum",
]


def needs_row_norms(measures: Sequence[str]) -> bool:
    """Whether some measure (debiased or lange CKA) needs the row-norm sums of the pass."""
    return any(registry.parse_spec(m)[0] in ROW_NORM_MEASURES for m in measures)


def pass_precision(precision: PrecisionChoice, measures: Sequence[str], statistics: bool = False) -> Precision:
    """The GEMM precision a linear pass runs in.

    ``"auto"`` is float32 when every measure is one whose float32 error stays at float32's rounding whatever
    the data's conditioning (`FLOAT32_EXACT_MEASURES`) and no statistics are asked for (their block
    replicates differ by amounts float32 rounding would blur); float64 otherwise.

    Parameters
    ----------
    precision
        ``"auto"``, ``"float64"`` or ``"float32"``.
    measures
        The measures the pass feeds.
    statistics
        Whether intervals or nulls are computed from the pass.

    Returns
    -------
    Precision
        ``"float64"`` or ``"float32"``.

    Raises
    ------
    ValueError
        If `precision` is not one of the three.
    """
    choice = check_precision_choice(precision)
    if choice != "auto":
        return choice
    exact = all(registry.parse_spec(m)[0] in FLOAT32_EXACT_MEASURES for m in measures)
    return "float32" if exact and measures and not statistics else "float64"


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
        sum_i |x_i - mean|^4, which debiased and lange CKA need (``None`` when it is not computed).
    name
        How errors name the representation.
    mean
        (d,) the column means, which the uncentred measures (eigenspace overlap, magnitude) need (``None``
        when unknown).

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
        mean: torch.Tensor | None = None,
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
        self.mean = None if mean is None else mean.to(torch.float64)

    @classmethod
    def from_moments(cls, moments: CrossMoments | MomentSums, a: int, name: str | None = None) -> LinearFit:
        """The fit of one representation of a `CrossMoments`.

        Parameters
        ----------
        moments
            Moments (or block sums, `reprsim.engine.block_moments.MomentSums`) holding the representation's
            diagonal block (a, a).
        a
            The representation's index.
        name
            How errors name it (default: ``"representation <a>"``).

        Returns
        -------
        LinearFit
            The fit, with the column means, and ``norm_product`` when the moments keep row norms.

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
            mean=moments.mean(a),
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
                k = kept_count(s.values, s.rank, options.keep, options.convention)
                cache[key] = (s.vectors[:, :k] / s.values[:k].sqrt()).T / self.varying_scale
            else:
                s = self.covariance_spectrum
                k = kept_count(s.values, s.rank, options.keep, options.convention)
                cache[key] = (s.vectors[:, :k] / s.values[:k].sqrt()).T
        basis: torch.Tensor = cache[key]
        return basis

    # --- factors of the block measures (reprsim.engine.block_score), cached per option ---------------------
    def _cached(self, key: tuple[object, ...], build: Callable[[], T]) -> T:
        """A factor cached under `key`; kept by `drop_decompositions`."""
        cache = self.__dict__.setdefault("_factors", {})
        if key not in cache:
            cache[key] = build()
        value: T = cache[key]
        return value

    @property
    def participation_ratio(self) -> float:
        """(tr C)^2 / ||C||_F^2, the representation's participation ratio (`reprsim.measures.participation_ratio`).

        Raises ValueError when the representation has no variance.
        """
        if not self.frobenius > 0.0:
            raise ValueError(f"participation_ratio: {self.name} has no variance")
        return self.trace**2 / self.frobenius**2

    @property
    def varying_trace(self) -> float:
        """The trace of C over the varying neurons."""
        return float(self.variances[self.varying].sum())

    def shape_basis(self, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The netrep partial whitening of this side in its eigenbasis, before the variance-preserving rescaling.

        Parameters
        ----------
        alpha
            The partial-whitening weight, in [0, 1].

        Returns
        -------
        basis : torch.Tensor
            B = diag(d) V^T (rank x varying): the pair's whitened cross product is B_x C_xy B_y^T.
        values : torch.Tensor
            The covariance eigenvalues on the numerical range (||X~||_F^2 = sum values d^2).

        Raises
        ------
        ValueError
            If every neuron is constant or the decomposition fails.
        """

        def build() -> tuple[torch.Tensor, torch.Tensor]:
            self.require_varying("shape_metric")
            s = self.covariance_spectrum
            values = s.values[: s.rank]
            return (s.vectors[:, : s.rank] * whitening_weights(values, alpha)).T, values

        return self._cached(("shape", alpha), build)

    def gulp_basis(self, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
        """GULP's ridge-weighted basis of this side (lam > 0; lam = 0 uses `whitener`).

        Parameters
        ----------
        lam
            The penalty, > 0.

        Returns
        -------
        basis : torch.Tensor
            G = diag(sqrt(w)) V^T / sqrt(tr C) (rank x varying): the cross term is ||G_x C_xy G_y^T||_F^2.
        self_term : torch.Tensor
            sum_k (e_k w_k)^2, the side's own term, e the trace-normalised eigenvalues, w = 1 / (e + lam).

        Raises
        ------
        ValueError
            If every neuron is constant or the decomposition fails.
        """

        def build() -> tuple[torch.Tensor, torch.Tensor]:
            self.require_varying("gulp")
            s = self.covariance_spectrum
            trace = self.varying_trace
            values = s.values[: s.rank] / trace
            weights = gulp_weights(values, lam)
            basis = (s.vectors[:, : s.rank] * weights.sqrt()).T / math.sqrt(trace)
            return basis, (values * weights).square().sum()

        return self._cached(("gulp", lam), build)

    @cached_property
    def uncentred_whitener(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Orthonormal coordinates of the uncentred column space (the eigenspace overlap's basis).

        From the uncentred Gram G = C + n m m^T of the nonzero neurons scaled to unit norm, as
        `reprsim.measures.spectral.uncentred_basis` decides the rank on unit-norm columns.

        Returns
        -------
        whitener : torch.Tensor
            W (rank x nonzero neurons) with W G W^T = I.
        nonzero : torch.Tensor
            Indices of the neurons that are not identically zero.

        Raises
        ------
        ValueError
            If the means are unknown, every neuron is zero, or the decomposition fails.
        """
        gram = self.uncentred_gram()
        norms = torch.diagonal(gram).clamp(min=0.0).sqrt()
        nonzero = torch.nonzero(norms > 0.0).squeeze(1)
        if nonzero.numel() == 0:
            raise ValueError(f"eigenspace_overlap: every neuron of {self.name} is zero")
        scale = norms[nonzero]
        s = spectrum(gram[nonzero][:, nonzero] / torch.outer(scale, scale), f"the uncentred Gram of {self.name}")
        return (s.vectors[:, : s.rank] / s.values[: s.rank].sqrt()).T / scale, nonzero

    def uncentred_gram(self) -> torch.Tensor:
        """X^T X = C + n m m^T from the centred block and the means.

        Returns
        -------
        torch.Tensor
            d x d, float64.

        Raises
        ------
        ValueError
            If the fit was made without the means.
        """
        return self.covariance + self.n * torch.outer(self.require_mean(), self.require_mean())

    def require_mean(self) -> torch.Tensor:
        """The column means.

        Returns
        -------
        torch.Tensor
            (d,) float64.

        Raises
        ------
        ValueError
            If the fit was made without them.
        """
        if self.mean is None:
            raise ValueError(f"{self.name}: this measure needs the column means (LinearFit(..., mean=...))")
        return self.mean
