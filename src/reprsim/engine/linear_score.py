"""Every linear similarity measure of a pair from its centred cross-product blocks (docs/design/engine.md).

Given C_xx, C_yy, C_xy (centred cross-products X_c^T Y_c, any common scale) and n, each measure of
docs/reference/measures.md is a function of small d x d matrices, so its cost after the streaming pass is independent
of n. The per-representation work (eigendecompositions, whitening, SVCCA reductions, variances) lives in
`LinearFit`, computed once per representation and reused by every pair it is in; `PairTerms`
holds one pair's cross block and caches the intermediates that several measures share (the whitened cross
block, its SVD), so each pair pays only for its cross terms.

The one-shot functions of `reprsim.measures` are the reference: the same constant-neuron rule, the same
exclusions and clipping, the same directions. The one numerical difference is how a rank is decided: the
one-shot functions threshold the singular values of the (unit-column) data, these functions threshold the
eigenvalues of the covariance (or correlation) matrix at `eigen_rank_tolerance`, which is as fine as an
eigendecomposition of a float64 covariance can resolve (directions whose singular value is below about 1e-6
of the largest are treated as rounding). For data of full numerical rank, or with exact rank deficiency
(constant or duplicated neurons, n <= p), both agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from reprsim.measures import registry
from reprsim.measures.neuron import NeuronMatch

from . import block_score
from .cka_score import debiased_cka, ensd, lange_cka, linear_cka, unbiased_hsic
from .linear_fit import ENGINE_MEASURES, Directed, LinearFit, SvccaOptions
from .pair_terms import CanonicalDecomposition, PairTerms, gram_singular_values

__all__ = [
    "CanonicalDecomposition", "Derivation", "MeasureValue", "PairTerms", "angular_distance", "canonical_correlations",
    "cca_r2", "cca_rho", "check_measures", "debiased_cka", "derive", "ensd", "lange_cka", "linear_cka", "linreg",
    "maxsim", "neuron_matches", "procrustes", "procrustes_distance", "pwcca", "r2_lr", "svcca", "svcca_options_of",
    "unbiased_hsic",
]


# --- the measures ---------------------------------------------------------------------------------------
def _best_matches(corr: torch.Tensor, own: LinearFit, other: LinearFit) -> NeuronMatch:
    """NeuronMatch of `own`'s neurons (rows of corr) against `other`'s (columns), as maxsim_per_neuron."""
    best_var, arg_var = corr.max(dim=1)
    valid = (~own.constant).cpu().numpy()
    best = np.zeros(own.width, dtype=np.float64)
    index = np.full(own.width, -1, dtype=np.int64)
    best[valid] = best_var.cpu().numpy()
    index[valid] = other.varying[arg_var].cpu().numpy()
    return NeuronMatch(best, index, valid, own.n_constant, other.n_constant)


def neuron_matches(t: PairTerms) -> Directed[NeuronMatch]:
    """Every neuron's best |Pearson| partner on the other side, both directions.

    Parameters
    ----------
    t
        The pair's terms.

    Returns
    -------
    Directed of NeuronMatch
        ``a_to_b`` matches X's neurons in Y, as ``maxsim_per_neuron(X, Y)``; ``b_to_a`` the reverse. Constant
        neurons are marked invalid (index -1).

    Raises
    ------
    ValueError
        If every neuron of a side is constant.
    """
    for stats in (t.x, t.y):
        stats.require_varying("maxsim")
    corr = t.neuron_correlations.abs()
    return Directed(_best_matches(corr, t.x, t.y), _best_matches(corr.T, t.y, t.x))


def maxsim(t: PairTerms) -> Directed[float]:
    """Maxsim: mean_i max_j |Pearson(x_i, y_j)| over the varying neurons, both directions.

    Parameters
    ----------
    t
        The pair's terms.

    Returns
    -------
    Directed of float
        ``a_to_b`` averages over X's neurons, ``b_to_a`` over Y's.

    Raises
    ------
    ValueError
        If every neuron of a side is constant.
    """
    matches = neuron_matches(t)
    return Directed(matches.a_to_b.score, matches.b_to_a.score)


def _linreg_one_way(regressed: torch.Tensor, own: LinearFit) -> float:
    """Mean over own's varying neurons of the multiple correlation (clipped at 1)."""
    explained = regressed.square().sum(dim=1) / own.variances[own.varying]
    return float(explained.sqrt().clamp(max=1.0).mean())


def linreg(t: PairTerms) -> Directed[float]:
    """Mean multiple correlation of each neuron regressed on the other side (Wu et al.'s mixedsim).

    Parameters
    ----------
    t
        The pair's terms.

    Returns
    -------
    Directed of float
        ``a_to_b`` regresses X's neurons on Y, ``b_to_a`` Y's on X; each in [0, 1].

    Raises
    ------
    ValueError
        If every neuron of a side is constant or a decomposition fails.
    """
    return Directed(_linreg_one_way(t.regressed_on_y, t.x), _linreg_one_way(t.regressed_on_x, t.y))


def _r2_one_way(regressed: torch.Tensor, own: LinearFit) -> float:
    """Explained fraction of own's total variance, clipped to [0, 1]."""
    return min(max(float(regressed.square().sum()) / own.varying_trace, 0.0), 1.0)


def r2_lr(t: PairTerms) -> Directed[float]:
    """Fraction of each side's variance that a linear fit from the other explains (Kornblith et al.'s R2_LR).

    Parameters
    ----------
    t
        The pair's terms.

    Returns
    -------
    Directed of float
        ``a_to_b`` is the fraction of X's variance explained from Y, ``b_to_a`` the reverse; each in [0, 1].

    Raises
    ------
    ValueError
        If every neuron of a side is constant or a decomposition fails.
    """
    return Directed(_r2_one_way(t.regressed_on_y, t.x), _r2_one_way(t.regressed_on_x, t.y))


def canonical_correlations(t: PairTerms) -> np.ndarray:
    """The canonical correlations rho_1 >= ... >= rho_m, as the one-shot function gives them.

    Parameters
    ----------
    t
        The pair's terms.

    Returns
    -------
    numpy.ndarray
        (m,) float64, clipped to [0, 1], m = min(rank X, rank Y).

    Raises
    ------
    ValueError
        If every neuron of a side is constant or a decomposition fails.
    """
    return t.correlations.cpu().numpy()


def cca_r2(t: PairTerms) -> float:
    """Mean squared canonical correlation: sum rho_k^2 / m.

    Parameters
    ----------
    t
        The pair's terms.

    Returns
    -------
    float
        The similarity, in [0, 1].

    Raises
    ------
    ValueError
        If every neuron of a side is constant or a decomposition fails.
    """
    return float(t.correlations.square().mean())


def cca_rho(t: PairTerms) -> float:
    """Mean canonical correlation: sum rho_k / m.

    Parameters
    ----------
    t
        The pair's terms.

    Returns
    -------
    float
        The similarity, in [0, 1].

    Raises
    ------
    ValueError
        If every neuron of a side is constant or a decomposition fails.
    """
    return float(t.correlations.mean())


def svcca(t: PairTerms, options: SvccaOptions) -> float:
    """SVCCA: the mean canonical correlation of the top-k directions of each side (the k x k reduced blocks).

    Parameters
    ----------
    t
        The pair's terms.
    options
        The kept variance fraction, k rule and standardising.

    Returns
    -------
    float
        The similarity, in [0, 1].

    Raises
    ------
    ValueError
        If every neuron of a side is constant or a decomposition fails.
    """
    bx, by = t.x.svcca_basis(options), t.y.svcca_basis(options)
    reduced = bx @ t.varying_cross @ by.T
    rho = gram_singular_values(reduced, f"the SVCCA-reduced cross-covariance of {t.x.name} and {t.y.name}")
    return float(rho.clamp(0.0, 1.0).mean())


def _pwcca_one_way(loadings: torch.Tensor, directions: torch.Tensor, rho: torch.Tensor) -> float:
    """The canonical correlations weighted by one side's projection weights."""
    alpha = (loadings @ directions).abs().sum(dim=0)
    score = (alpha * rho).sum() / alpha.sum()
    if not bool(torch.isfinite(score)):
        raise ValueError("pwcca: the projection weights are degenerate (no variance along the variates)")
    return float(score)


def pwcca(t: PairTerms) -> Directed[float]:
    """PWCCA: canonical correlations weighted by |<h_k, x_i>| summed over the side's neurons (Morcos et al.).

    Parameters
    ----------
    t
        The pair's terms.

    Returns
    -------
    Directed of float
        ``a_to_b`` weights by X's neurons, ``b_to_a`` by Y's; each in [0, 1].

    Raises
    ------
    ValueError
        If every neuron of a side is constant, a decomposition fails, or the projection weights are
        degenerate (no variance along the variates).
    """
    c = t.canonical
    rho = c.rho.clamp(0.0, 1.0)
    return Directed(_pwcca_one_way(t.x.loadings, c.u, rho), _pwcca_one_way(t.y.loadings, c.v, rho))


def procrustes(t: PairTerms) -> float:
    """Orthogonal Procrustes similarity: ||C_xy||_* / sqrt(tr C_xx tr C_yy) over the varying neurons.

    Parameters
    ----------
    t
        The pair's terms.

    Returns
    -------
    float
        The similarity, clipped to [0, 1].

    Raises
    ------
    ValueError
        If every neuron of a side is constant or the SVD fails.
    """
    for stats in (t.x, t.y):
        stats.require_varying("procrustes")
    nuclear = t.cross_nuclear_norm
    return min(max(nuclear / math.sqrt(t.x.varying_trace * t.y.varying_trace), 0.0), 1.0)


def procrustes_distance(t: PairTerms) -> float:
    """Procrustes distance (Ding et al.): 2 - 2 `procrustes`.

    Parameters
    ----------
    t
        The pair's terms.

    Returns
    -------
    float
        The distance, in [0, 2].

    Raises
    ------
    ValueError
        As `procrustes`.
    """
    return 2.0 - 2.0 * procrustes(t)


def angular_distance(t: PairTerms) -> float:
    """Angular Procrustes distance (Williams et al.): arccos(`procrustes`).

    Parameters
    ----------
    t
        The pair's terms.

    Returns
    -------
    float
        The distance, in [0, pi/2].

    Raises
    ------
    ValueError
        As `procrustes`.
    """
    return math.acos(min(1.0, max(-1.0, procrustes(t))))


MeasureValue = float | Directed[float]

Derivation = Callable[[PairTerms, Mapping[str, Any], SvccaOptions], MeasureValue]

_DERIVATIONS: dict[str, Derivation] = {
    "maxsim": lambda t, _, __: maxsim(t),
    "linreg": lambda t, _, __: linreg(t),
    "r2_lr": lambda t, _, __: r2_lr(t),
    "cca_r2": lambda t, _, __: cca_r2(t),
    "cca_rho": lambda t, _, __: cca_rho(t),
    "svcca": lambda t, options, defaults: svcca(t, svcca_options_of(options, defaults)),
    "pwcca": lambda t, _, __: pwcca(t),
    "linear_cka": lambda t, _, __: linear_cka(t),
    "debiased_cka": lambda t, _, __: debiased_cka(t),
    "procrustes": lambda t, _, __: procrustes(t),
    "procrustes_distance": lambda t, _, __: procrustes_distance(t),
    "angular_distance": lambda t, _, __: angular_distance(t),
    "lange_cka": lambda t, _, __: lange_cka(t),
    "ensd": lambda t, _, __: ensd(t),
    **{name: block_score.with_svcca_defaults(f) for name, f in block_score.BLOCK_DERIVATIONS.items()},
}


def svcca_options_of(options: Mapping[str, Any], defaults: SvccaOptions | None = None) -> SvccaOptions:
    """SVCCA's options from a measure spec's options (``svcca(keep=0.9)``) over defaults.

    Parameters
    ----------
    options
        The spec's options (keep, convention, standardize).
    defaults
        The options not given take these (default: ``SvccaOptions()``).

    Returns
    -------
    SvccaOptions
        The merged options.
    """
    base = defaults if defaults is not None else SvccaOptions()
    given = {k: v for k, v in options.items() if k in ("keep", "convention", "standardize")}
    return SvccaOptions(**{"keep": base.keep, "convention": base.convention, "standardize": base.standardize, **given})


def _base_and_options(spec: str) -> tuple[str, Mapping[str, Any]]:
    info = registry.get(spec)
    return info.base, info.options


def check_measures(measures: Sequence[str] | str) -> tuple[str, ...]:
    """Validate the measure names the engine is asked for.

    Parameters
    ----------
    measures
        Names from `ENGINE_MEASURES` (a single string counts as one name).

    Returns
    -------
    tuple of str
        The names, de-duplicated, in their first order.

    Raises
    ------
    ValueError
        If none are given, or one cannot be derived from streamed moments (naming it and listing the
        measures that can).
    """
    names = (measures,) if isinstance(measures, str) else tuple(measures)
    if not names:
        raise ValueError(f"no measures given; choose from {', '.join(ENGINE_MEASURES)}")
    canonical = []
    for name in names:
        base, _ = registry.parse_spec(name)
        if base not in _DERIVATIONS:
            raise ValueError(
                f"measure {name!r} cannot be derived from streamed moments; choose from "
                f"{', '.join(ENGINE_MEASURES)} (the others need the rows themselves: reprsim.measures)"
            )
        canonical.append(registry.get(name).name)
    return tuple(dict.fromkeys(canonical))


def derive(t: PairTerms, measures: Sequence[str], svcca_options: SvccaOptions | None = None) -> dict[str, MeasureValue]:
    """The requested measures of one pair from its terms.

    Parameters
    ----------
    t
        The pair's terms (its two fits and cross block).
    measures
        Names from `ENGINE_MEASURES`.
    svcca_options
        SVCCA's options (default: ``SvccaOptions()``, keep 0.99 with Raghu's rule).

    Returns
    -------
    dict
        ``{measure: value}`` in the order asked for: a float for a symmetric measure, a `Directed` for a
        directed one (`DIRECTED_MEASURES`).

    Raises
    ------
    ValueError
        If a name is unknown (see `check_measures`) or a measure is undefined for the pair (see each
        measure's function).
    """
    defaults = svcca_options if svcca_options is not None else SvccaOptions()
    specs = check_measures(measures)
    parsed = [(spec, *_base_and_options(spec)) for spec in specs]
    if any(base == "pwcca" for _, base, _ in parsed):
        # PWCCA needs the canonical directions; decomposed first, they also give the other CCA measures
        # their correlations instead of a second decomposition.
        t.canonical  # noqa: B018 (cached)
    values: dict[str, MeasureValue] = {}
    for spec, base, options in parsed:
        if t.x is t.y and _is_distance(spec):
            # A representation against itself: 0 by definition. Derived, it is the square root of rounding
            # (about 1e-8 times the scale), which differs between two equal computations.
            values[spec] = 0.0
        else:
            values[spec] = _DERIVATIONS[base](t, options, defaults)
    return values


def _is_distance(spec: str) -> bool:
    """Whether a measure is a symmetric dissimilarity, 0 for identical inputs."""
    info = registry.get(spec)
    return info.symmetric and not info.larger_is_similar
