"""Further linear measures of a pair from its blocks.

Shape metrics, Bures, GULP, neuron matching, the eigenspace overlap and the magnitude difference.

Each is the engine's form of a one-shot function of `reprsim.measures` (the reference) and reuses the
per-representation factors `LinearFit` caches (covariance spectrum, partial whiteners, GULP bases, the
whitener of the CCA measures), so a pair pays only for products and a decomposition of its own cross block.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from reprsim.measures import registry
from reprsim.measures.matching import assignment_score, soft_matching_from_correlations
from reprsim.measures.shape import NO_WHITENING, check_alpha, check_kind, preserved_variance_scale, shape_distance
from reprsim.measures.spectral import check_lam
from reprsim.measures.statistics import magnitude

from .linear_fit import LinearFit
from .pair_terms import PairTerms, singular_values


def shape_metric(t: PairTerms, alpha: float = 1.0, kind: str = "angular") -> float:
    """The netrep shape distance with partial whitening (`reprsim.measures.shape_metric`).

    The whitened cross product is B_x C_xy B_y^T with each side's cached basis B = diag(d) V^T.

    Parameters
    ----------
    t
        The pair's terms.
    alpha
        The partial-whitening weight, in [0, 1].
    kind
        ``"angular"`` or ``"euclidean"``.

    Returns
    -------
    float
        The distance.

    Raises
    ------
    ValueError
        If `alpha` or `kind` is invalid, every neuron of a side is constant, or a decomposition fails.
    """
    alpha, ground = check_alpha(alpha), check_kind(kind)
    bx, values_x = t.x.shape_basis(alpha)
    by, values_y = t.y.shape_basis(alpha)
    if alpha > NO_WHITENING:  # B = V^T spans each side's numerical range: the nuclear norm of C_xy itself
        nuclear = t.cross_nuclear_norm
    else:
        nuclear = float(singular_values(bx @ t.varying_cross @ by.T, "the whitened cross product").sum())
    norm_x, norm_y = float((values_x * bx.square().sum(dim=1)).sum()), float((values_y * by.square().sum(dim=1)).sum())
    width = max(t.x.width, t.y.width)
    scale_x = preserved_variance_scale(values_x, alpha, width) if ground == "euclidean" else 1.0
    scale_y = preserved_variance_scale(values_y, alpha, width) if ground == "euclidean" else 1.0
    return shape_distance(nuclear, norm_x, norm_y, scale_x, scale_y, ground)


def bures_distance(t: PairTerms) -> float:
    """sqrt(tr C_x + tr C_y - 2 ||C_xy||_*) over the varying neurons (`reprsim.measures.bures_distance`).

    Parameters
    ----------
    t
        The pair's terms.

    Returns
    -------
    float
        The distance.

    Raises
    ------
    ValueError
        If every neuron of a side is constant or the SVD fails.
    """
    for side in (t.x, t.y):
        side.require_varying("bures_distance")
    nuclear = t.cross_nuclear_norm
    return math.sqrt(max(t.x.varying_trace + t.y.varying_trace - 2.0 * nuclear, 0.0))


def gulp(t: PairTerms, lam: float = 0.0) -> float:
    """GULP's squared distance (`reprsim.measures.gulp`).

    At lam = 0: rank X + rank Y - 2 ||K||_F^2 with K the whitened cross block the CCA measures share;
    otherwise the cached ridge-weighted bases G give the cross term ||G_x C_xy G_y^T||_F^2.

    Parameters
    ----------
    t
        The pair's terms.
    lam
        The ridge penalty, >= 0.

    Returns
    -------
    float
        The squared distance.

    Raises
    ------
    ValueError
        If `lam` is negative, every neuron of a side is constant, or a decomposition fails.
    """
    lam = check_lam(lam)
    if lam == 0.0:
        k = t.coherence
        return float(k.shape[0] + k.shape[1] - 2.0 * k.square().sum())
    gx, own_x = t.x.gulp_basis(lam)
    gy, own_y = t.y.gulp_basis(lam)
    cross = (gx @ t.varying_cross @ gy.T).square().sum()
    return float(own_x + own_y - 2.0 * cross)


def correlations(t: PairTerms, measure: str) -> torch.Tensor:
    """Pearson correlations of the varying neurons: C_xy scaled by the neurons' centred norms.

    Parameters
    ----------
    t
        The pair's terms.
    measure
        The measure, for the message.

    Returns
    -------
    torch.Tensor
        p' x q', clipped to [-1, 1].

    Raises
    ------
    ValueError
        If every neuron of a side is constant.
    """
    for side in (t.x, t.y):
        side.require_varying(measure)
    return t.neuron_correlations


def hard_matching(t: PairTerms) -> float:
    """The mean |Pearson| of the best 1-to-1 neuron assignment (`reprsim.measures.hard_matching`).

    Parameters
    ----------
    t
        The pair's terms.

    Returns
    -------
    float
        The score, in [0, 1].

    Raises
    ------
    ValueError
        If every neuron of a side is constant.
    """
    return assignment_score(correlations(t, "hard_matching").cpu().numpy())


def soft_matching_distance(t: PairTerms) -> float:
    """Optimal transport between the two sides' neurons (`reprsim.measures.soft_matching_distance`).

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
        If every neuron of a side is constant or the transport problem fails.
    """
    return soft_matching_from_correlations(correlations(t, "soft_matching_distance").cpu().numpy())


def eigenspace_overlap(t: PairTerms) -> float:
    """||W_x G_xy W_y^T||_F^2 / max(p, q) with uncentred Grams (`reprsim.measures.eigenspace_overlap`).

    Parameters
    ----------
    t
        The pair's terms; both fits need their column means.

    Returns
    -------
    float
        The score, in [0, 1].

    Raises
    ------
    ValueError
        If the means are unknown, every neuron of a side is zero, or a decomposition fails.
    """
    wx, nonzero_x = t.x.uncentred_whitener
    wy, nonzero_y = t.y.uncentred_whitener
    gram = t.cross + t.n * torch.outer(t.x.require_mean(), t.y.require_mean())
    overlap = (wx @ gram[nonzero_x][:, nonzero_y] @ wy.T).square().sum()
    return float(overlap) / max(t.x.width, t.y.width)


def magnitude_difference(t: PairTerms) -> float:
    """| ||mean_x|| - ||mean_y|| | (`reprsim.measures.magnitude_difference`).

    Parameters
    ----------
    t
        The pair's terms; both fits need their column means.

    Returns
    -------
    float
        The difference.

    Raises
    ------
    ValueError
        If the means are unknown.
    """
    return abs(magnitude(t.x.require_mean()) - magnitude(t.y.require_mean()))


BlockDerivation = Callable[[PairTerms, Mapping[str, Any]], float]

BLOCK_DERIVATIONS: dict[str, BlockDerivation] = {
    "shape_metric": lambda t, o: shape_metric(t, **o),
    "bures_distance": lambda t, _: bures_distance(t),
    "gulp": lambda t, o: gulp(t, **o),
    "hard_matching": lambda t, _: hard_matching(t),
    "soft_matching_distance": lambda t, _: soft_matching_distance(t),
    "eigenspace_overlap": lambda t, _: eigenspace_overlap(t),
    "magnitude_difference": lambda t, _: magnitude_difference(t),
}


def with_svcca_defaults(derivation: BlockDerivation) -> Callable[[PairTerms, Mapping[str, Any], Any], float]:
    """The derivation in the engine's signature ``(terms, options, svcca_defaults)`` (SVCCA's are unused).

    Parameters
    ----------
    derivation
        ``(terms, options) -> value``.

    Returns
    -------
    callable
        ``(terms, options, svcca_defaults) -> value``.
    """
    return lambda t, options, _: derivation(t, options)


def prepare_fit(fit: LinearFit, measures: Sequence[str]) -> None:
    """Build the per-representation factors these measures use, before the pairs share them.

    Call it before `LinearFit.drop_decompositions`, as the engine's families prepare the CCA factors.

    Parameters
    ----------
    fit
        One representation's fit.
    measures
        The measure specs of the study (others are ignored).

    Raises
    ------
    ValueError
        If an option is invalid or a decomposition fails.
    """
    for spec in measures:
        info = registry.get(spec)
        if info.base == "shape_metric":
            fit.shape_basis(check_alpha(info.options.get("alpha", 1.0)))
        elif info.base == "gulp":
            lam = check_lam(info.options.get("lam", 0.0))
            if lam > 0.0:
                fit.gulp_basis(lam)
            else:
                fit.whitener  # noqa: B018 (cached)
        elif info.base == "eigenspace_overlap":
            fit.uncentred_whitener  # noqa: B018 (cached)
