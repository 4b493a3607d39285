"""First-order change of each linear measure when its centred moments change: the linearised jackknife.

Leaving block g out changes a pair's centred cross-products by Delta_g = C - C^(-g)
(`BlockedMoments.left_out_changes`, exact). To first order a measure then changes by

    d theta[Delta] = <G_x, Delta_xx> + <G_y, Delta_yy> + <G_xy, Delta_xy>,

so one set of gradient matrices per pair, and G inner products with the blocks, give every leave-one-block-out
value with no refit and no decomposition per block. Every measure here ignores the moments' scale, so the
expansion is taken about C rescaled to the left-out data's n - n_g rows: theta^(-g) ~ theta - n / (n - n_g)
d theta[Delta_g] (`reprsim.engine.linear_inference`). The gradients here
hold the decompositions fixed where the measure's value does not depend on them to first order (the canonical
and singular vectors at a stationary point), and differentiate through them where it does (SVCCA's kept
subspace). A value clipped at a bound has gradient 0 there; a count chosen from the data (SVCCA's k, maxsim's
best partner) is held at its value on all rows.

The measures covered (`GRADIENTS`), with the fit-once quantities each uses:

- ``cca_rho``, ``cca_r2``: canonical directions a_k = W_x^T u_k, b_k = W_y^T v_k (a_k^T C_xx a_k = 1) give
  d rho_k = a_k^T dC_xy b_k - rho_k / 2 (a_k^T dC_xx a_k + b_k^T dC_yy b_k);
- ``svcca`` (unstandardised neurons): the same on the reduced blocks, plus the rotation of each side's kept
  eigenvectors V_k towards the dropped V_perp, dV_k = V_perp E with E_pl = (V_perp^T dC V_k)_pl / (lambda_l -
  lambda_p);
- ``maxsim``: each neuron's best |Pearson r_ij|, dr = dC_ij / sqrt(C_ii C_jj) - r / 2 (dC_ii / C_ii + dC_jj / C_jj);
- ``linreg``, ``r2_lr``: with beta = C_yy^+ C_yx, d (C_xy C_yy^+ C_yx)_ii = 2 (dC_xy beta)_ii - (beta^T dC_yy beta)_ii;
- ``procrustes`` and its distances: d ||C_xy||_* = <U V^T, dC_xy>, and the traces' derivatives.

The CKA family needs no decomposition, so its leave-one-out values are exact refits at the cost of a few
Frobenius norms; PWCCA's weights move with every canonical direction (gaps rho_k^2 - rho_j^2), so it is refitted
too (`reprsim.engine.linear_inference`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from reprsim.measures import registry

from .linear_fit import Directed, LinearFit, SvccaOptions
from .linear_score import svcca_options_of
from .pair_terms import PairTerms, canonical_decomposition
from .spectra import kept_count


@dataclass(frozen=True)
class Gradient:
    """The first-order change of one value: <x, dC_xx> + <y, dC_yy> + <xy, dC_xy>, each over the full widths.

    Parameters
    ----------
    x, y
        d_x x d_x and d_y x d_y.
    xy
        d_x x d_y.
    """

    x: torch.Tensor
    y: torch.Tensor
    xy: torch.Tensor

    def scaled(self, factor: float) -> Gradient:
        """The gradient of factor * theta."""
        return Gradient(self.x * factor, self.y * factor, self.xy * factor)


def _embed(matrix: torch.Tensor, rows: LinearFit, cols: LinearFit) -> torch.Tensor:
    """A matrix over the varying neurons of two fits, placed in the full widths (zeros for constant neurons)."""
    if rows.n_constant == 0 and cols.n_constant == 0:
        return matrix
    full = matrix.new_zeros((rows.width, cols.width))
    full[rows.varying[:, None], cols.varying[None, :]] = matrix
    return full


def _gradient(t: PairTerms, gx: torch.Tensor, gy: torch.Tensor, gxy: torch.Tensor) -> Gradient:
    """A gradient from its blocks over the varying neurons."""
    return Gradient(_embed(gx, t.x, t.x), _embed(gy, t.y, t.y), _embed(gxy, t.x, t.y))


def _identity(fit: LinearFit) -> torch.Tensor:
    return torch.eye(fit.varying.numel(), dtype=torch.float64, device=fit.covariance.device)


def _inside(values: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """1 where a value is strictly inside its clipping range, else 0 (the clipped value does not move)."""
    return ((values > low) & (values < high)).to(values.dtype)


def _canonical_gradient(a: torch.Tensor, b: torch.Tensor, rho: torch.Tensor,
                        weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradient blocks of sum_k w_k rho_k from the canonical directions (columns of a and b)."""
    return (-(a * (weights * rho / 2)) @ a.T, -(b * (weights * rho / 2)) @ b.T, (a * weights) @ b.T)


def canonical_mean(t: PairTerms, power: int) -> Gradient:
    """Gradient of mean_k rho_k^power (``cca_rho``: 1, ``cca_r2``: 2) over the clipped correlations.

    Parameters
    ----------
    t
        The pair's terms on all rows.
    power
        1 or 2.

    Returns
    -------
    Gradient
        Of the measure's value.
    """
    c = t.canonical
    rho = c.rho
    weights = _inside(rho, 0.0, 1.0) * (power * rho ** (power - 1)) / rho.numel()
    a, b = t.x.whitener.T @ c.u, t.y.whitener.T @ c.v
    return _gradient(t, *_canonical_gradient(a, b, rho, weights))


def _rotation_term(fit: LinearFit, kept: int, pull: torch.Tensor) -> torch.Tensor:
    """<dC, result> = <E, pull> with E the first-order rotation of the kept eigenvectors into the dropped ones.

    `pull` is (dropped x kept) in the eigenbasis; E_pl = (V_perp^T dC V_k)_pl / (lambda_l - lambda_p).
    """
    s = fit.covariance_spectrum
    values, vectors = s.values, s.vectors
    gap = values[None, :kept] - values[kept:, None]
    scaled = torch.where(gap > 0, pull / gap, torch.zeros_like(pull))
    return vectors[:, kept:] @ scaled @ vectors[:, :kept].T


def svcca_mean(t: PairTerms, options: SvccaOptions) -> Gradient:
    """Gradient of SVCCA's mean canonical correlation of the kept directions (unstandardised neurons).

    Parameters
    ----------
    t
        The pair's terms on all rows.
    options
        SVCCA's options; they must not standardise the neurons.

    Returns
    -------
    Gradient
        Of the measure's value, the number of kept directions held fixed.
    """
    assert not options.standardized, "svcca_mean: the standardised convention has no gradient here"
    sx, sy = t.x.covariance_spectrum, t.y.covariance_spectrum
    # The bases come from the same spectra as the rotation term below (not from the fits' cached bases,
    # whose eigenvectors another decomposition may have signed or rotated otherwise).
    kx = kept_count(sx.values, sx.rank, options.keep, options.convention)
    ky = kept_count(sy.values, sy.rank, options.keep, options.convention)
    bx, by = ((s.vectors[:, :k] / s.values[:k].sqrt()).T for s, k in ((sx, kx), (sy, ky)))
    reduced = canonical_decomposition(bx @ t.varying_cross @ by.T, f"the SVCCA-reduced cross-covariance of "
                                      f"{t.x.name} and {t.y.name}")
    u, rho, v = reduced.u, reduced.rho, reduced.v
    weights = _inside(rho, 0.0, 1.0) / rho.numel()
    a, b = bx.T @ u, by.T @ v
    gx, gy, gxy = _canonical_gradient(a, b, rho, weights)
    # The kept subspace turns: for X, d(reduced cross) gains E^T V_perp^T C_xy b in eigen-coordinates.
    ax_eig = (u / sx.values[:kx, None].sqrt()) * weights   # kept-eigen coordinates of a_k, weighted
    by_eig = (v / sy.values[:ky, None].sqrt()) * weights
    pull_x = sx.vectors[:, kx:].T @ (t.varying_cross @ b) @ ax_eig.T
    pull_y = sy.vectors[:, ky:].T @ (t.varying_cross.T @ a) @ by_eig.T
    gx = gx + _rotation_term(t.x, kx, pull_x)
    gy = gy + _rotation_term(t.y, ky, pull_y)
    return _gradient(t, gx, gy, gxy)


def _best_match_gradient(corr: torch.Tensor, own: LinearFit, other: LinearFit) -> tuple[torch.Tensor, ...]:
    """Gradient blocks (own, other, own x other) of mean_i max_j |r_ij| over own's varying neurons."""
    best, partner = corr.abs().max(dim=1)
    rows = torch.arange(corr.shape[0], device=corr.device)
    signed = corr[rows, partner].sign() * _inside(best, 0.0, 1.0) / corr.shape[0]
    own_var, other_var = own.variances[own.varying], other.variances[other.varying]
    g_cross = torch.zeros_like(corr)
    g_cross[rows, partner] = signed / (own_var.sqrt() * other_var[partner].sqrt())
    half = signed * corr[rows, partner] / 2
    g_own = torch.diag(-half / own_var)
    g_other = torch.diag(torch.zeros_like(other_var).index_add(0, partner, -half / other_var[partner]))
    return g_own, g_other, g_cross


def maxsim(t: PairTerms) -> Directed[Gradient]:
    """Gradients of maxsim in both directions, each neuron's best partner held fixed."""
    corr = t.neuron_correlations
    gx, gy, gxy = _best_match_gradient(corr, t.x, t.y)
    hy, hx, hyx = _best_match_gradient(corr.T, t.y, t.x)
    return Directed(_gradient(t, gx, gy, gxy), _gradient(t, hx, hy, hyx.T))


def _regression(t: PairTerms, own_is_x: bool, explained_fraction: bool) -> Gradient:
    """Gradient of linreg (mean multiple correlation) or r2_lr (explained variance) of own regressed on other."""
    own, other = (t.x, t.y) if own_is_x else (t.y, t.x)
    regressed = t.regressed_on_y if own_is_x else t.regressed_on_x   # own varying x other's rank
    coefficients = regressed @ other.whitener                         # beta^T = C_own,other C_other^+
    variances = own.variances[own.varying]
    explained = regressed.square().sum(dim=1)
    if explained_fraction:
        trace = own.varying_trace
        value = float(explained.sum()) / trace
        weight = float(_inside(torch.tensor(value), 0.0, 1.0)) / trace
        weights = torch.full_like(variances, weight)
        g_own = -weight * value * _identity(own)
    else:
        r = (explained / variances).sqrt()
        weights = torch.where(_inside(r, 0.0, 1.0) > 0, 1 / (2 * r * variances), torch.zeros_like(r)) / r.numel()
        g_own = torch.diag(-weights * r.square())
    g_cross = 2 * weights[:, None] * coefficients
    g_other = -(coefficients.T * weights) @ coefficients
    if own_is_x:
        return _gradient(t, g_own, g_other, g_cross)
    return _gradient(t, g_other, g_own, g_cross.T)


def linreg(t: PairTerms) -> Directed[Gradient]:
    """Gradients of linreg in both directions."""
    return Directed(_regression(t, True, False), _regression(t, False, False))


def r2_lr(t: PairTerms) -> Directed[Gradient]:
    """Gradients of R2_LR in both directions."""
    return Directed(_regression(t, True, True), _regression(t, False, True))


def _procrustes_value(t: PairTerms) -> float:
    """The Procrustes similarity from the cross block's singular values."""
    return float(t.cross_decomposition.rho.sum()) / math.sqrt(t.x.varying_trace * t.y.varying_trace)


def procrustes(t: PairTerms) -> Gradient:
    """Gradient of the Procrustes similarity ||C_xy||_* / sqrt(tr C_xx tr C_yy)."""
    c = t.cross_decomposition
    tx, ty = t.x.varying_trace, t.y.varying_trace
    value = _procrustes_value(t)
    if not 0.0 < value < 1.0:
        return _gradient(t, 0 * _identity(t.x), 0 * _identity(t.y), torch.zeros_like(t.varying_cross))
    return _gradient(t, -value / (2 * tx) * _identity(t.x), -value / (2 * ty) * _identity(t.y),
                     (c.u @ c.v.T) / math.sqrt(tx * ty))


def angular_distance(t: PairTerms) -> Gradient:
    """Gradient of arccos(procrustes)."""
    value = min(max(_procrustes_value(t), 0.0), 1.0)
    return procrustes(t).scaled(-1.0 / math.sqrt(max(1.0 - value**2, 1e-300)))


GradientFunction = Callable[[PairTerms, Mapping[str, Any], SvccaOptions], Gradient | Directed[Gradient]]

GRADIENTS: dict[str, GradientFunction] = {
    "cca_rho": lambda t, _, __: canonical_mean(t, 1),
    "cca_r2": lambda t, _, __: canonical_mean(t, 2),
    "svcca": lambda t, options, defaults: svcca_mean(t, svcca_options_of(options, defaults)),
    "maxsim": lambda t, _, __: maxsim(t),
    "linreg": lambda t, _, __: linreg(t),
    "r2_lr": lambda t, _, __: r2_lr(t),
    "procrustes": lambda t, _, __: procrustes(t),
    "procrustes_distance": lambda t, _, __: procrustes(t).scaled(-2.0),
    "angular_distance": lambda t, _, __: angular_distance(t),
}


def linearised(base: str, options: Mapping[str, Any], defaults: SvccaOptions) -> bool:
    """Whether a measure (by base name and spec options) has a gradient here."""
    if base == "svcca":
        return not svcca_options_of(options, defaults).standardized
    return base in GRADIENTS


def linearised_measures(measures: Sequence[str], method: str, defaults: SvccaOptions) -> frozenset[str]:
    """The measures (registry specs) whose leave-one-out values are linearised under a jackknife method."""
    if method != "linearised":
        return frozenset()
    return frozenset(m for m in measures if linearised(registry.get(m).base, registry.get(m).options, defaults))


def prepare_gradients(fit: LinearFit, bases: set[str]) -> None:
    """Compute, once per representation, the decompositions the gradients of these measures use.

    Pairs then share them across threads; `LinearFit.drop_decompositions` frees them after the tile.
    """
    if "svcca" in bases:
        with contextlib.suppress(ValueError):  # a representation without variance fails where its pairs are derived
            fit.covariance_spectrum  # noqa: B018 (cached)
