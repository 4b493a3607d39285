"""Section 2: whether a measure notices information removed from a representation (Ding et al. 2021).

A layer's activations lose their k leading (or trailing) principal components; the measure compares the
damaged copy with the intact layer. A useful similarity falls as k grows (Spearman correlation of k with the
value near -1; near +1 for a distance), and it should fall below the *noise floor* - the value between the
same layer of two independently seeded networks - once enough is gone: otherwise the measure calls a
damaged layer more similar to the original than a functionally equivalent retrained one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from reprsim.validation.seeds import model_name
from reprsim.validation.specs import MeasureSpec, counting_warnings
from reprsim.validation.train_common import TrainedNetwork

Order = Literal["top", "bottom"]
ORDERS: tuple[Order, ...] = ("top", "bottom")

# Relative singular-value threshold below which a direction counts as numerically absent.
RANK_RTOL = 1e-6
# Values equal to this many significant digits are ties when ranking (rounding must not fake a trend).
TIE_DIGITS = 10


@dataclass(frozen=True)
class PrincipalComponents:
    """The centred SVD of a layer, X - mean = U diag(s) Vt, truncated to the numerical rank.

    Attributes
    ----------
    scores : numpy.ndarray
        U * s, shape ``(n, rank)``.
    directions : numpy.ndarray
        Vt, shape ``(rank, p)``.
    variances : numpy.ndarray
        s**2, in descending order, shape ``(rank,)``.
    """

    scores: np.ndarray  # U * s, n x rank
    directions: np.ndarray  # Vt, rank x p
    variances: np.ndarray  # s**2, descending

    @property
    def rank(self) -> int:
        """The number of components kept (the numerical rank)."""
        return len(self.variances)


def principal_components(X: np.ndarray) -> PrincipalComponents:
    """Compute the principal components of a layer, in float64.

    Parameters
    ----------
    X : numpy.ndarray
        The activations, shape ``(n, p)``.

    Returns
    -------
    PrincipalComponents
        The components, without directions whose singular value is below RANK_RTOL (1e-6) times the
        largest.

    Raises
    ------
    ValueError
        If the layer has no variance.
    """
    x = np.asarray(X, dtype=np.float64)
    centred = x - x.mean(axis=0, keepdims=True)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        raise ValueError(f"layer of shape {x.shape} has no variance; no components to delete")
    rank = int((s > RANK_RTOL * s[0]).sum())
    return PrincipalComponents(scores=u[:, :rank] * s[:rank], directions=vt[:rank], variances=s[:rank] ** 2)


def delete_components(X: np.ndarray, pcs: PrincipalComponents, k: int, order: Order) -> np.ndarray:
    """Delete a layer's k largest-variance ("top") or k smallest-variance ("bottom") principal components.

    The column means stay, and k = 0 returns X itself (measures that do not centre columns, such as RSA
    and mutual k-NN, then give exactly their identity value). For k > 0 the layer is rebuilt from the kept
    components rather than by subtracting the deleted ones: subtraction leaves rounding residue along the
    deleted directions, which measures that standardise neurons can blow up into spurious variance once
    few components remain.

    Parameters
    ----------
    X : numpy.ndarray
        The intact activations, shape ``(n, p)``.
    pcs : PrincipalComponents
        Their principal components (see `principal_components`).
    k : int
        How many components to delete, ``0 <= k < pcs.rank`` (at least one must be left).
    order : {"top", "bottom"}
        Delete the largest-variance or the smallest-variance components.

    Returns
    -------
    numpy.ndarray
        The damaged copy, float64, shape ``(n, p)``.

    Raises
    ------
    ValueError
        If `k` is out of range or `order` is unknown.
    """
    if not 0 <= k < pcs.rank:
        raise ValueError(f"k must be in [0, rank={pcs.rank}), got {k}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    x = np.asarray(X, dtype=np.float64)
    if k == 0:
        return x
    kept = slice(k, pcs.rank) if order == "top" else slice(0, pcs.rank - k)
    return x.mean(axis=0, keepdims=True) + pcs.scores[:, kept] @ pcs.directions[kept]


def deletion_counts(rank: int, n_points: int) -> list[int]:
    """Choose about `n_points` component counts in [0, rank - 1], dense near both ends.

    Deleting top components changes a layer most at small k; deleting bottom ones matters only when k
    approaches the rank (Ding et al.'s finding), so the grid is geometric from both ends.

    Parameters
    ----------
    rank : int
        The layer's rank (at least 2).
    n_points : int
        The approximate number of counts (at least 3).

    Returns
    -------
    list of int
        Distinct sorted counts, starting at 0.

    Raises
    ------
    ValueError
        If `rank` < 2 or `n_points` < 3.
    """
    if rank < 2:
        raise ValueError(f"need rank >= 2 to delete components and keep one, got {rank}")
    if n_points < 3:
        raise ValueError(f"n_points must be >= 3, got {n_points}")
    half = max(n_points // 2, 2)
    from_start = np.geomspace(1, rank - 1, half)
    from_end = rank - np.geomspace(1, rank - 1, half)
    counts = np.unique(np.round(np.concatenate([[0.0], from_start, from_end])).astype(int))
    return [int(k) for k in counts if 0 <= k <= rank - 1]


def variance_removed(pcs: PrincipalComponents, k: int, order: Order) -> float:
    """Compute the fraction of a layer's total variance carried by the k deleted components.

    Parameters
    ----------
    pcs : PrincipalComponents
        The layer's components.
    k : int
        The number of components deleted.
    order : {"top", "bottom"}
        Which end they were deleted from.

    Returns
    -------
    float
        A fraction in [0, 1].
    """
    chosen = pcs.variances[:k] if order == "top" else pcs.variances[pcs.rank - k :]
    return float(chosen.sum() / pcs.variances.sum())


def deletion_curves(
    network: TrainedNetwork,
    specs: Sequence[MeasureSpec],
    orders: Sequence[Order] = ORDERS,
    n_points: int = 12,
    warning_counts: dict[str, Counter[str]] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Compare every layer with itself after deleting k principal components, for every measure.

    Directed measures report sim(intact -> damaged): how much of the intact layer the damaged copy still
    accounts for. (The other direction is uninformative here: the damaged copy lies inside the intact
    layer's span, so e.g. R2_LR(damaged -> intact) is 1 whatever k is.)

    Parameters
    ----------
    network : TrainedNetwork
        The network whose layers are damaged.
    specs : sequence of MeasureSpec
        The measures.
    orders : sequence of {"top", "bottom"}, default ("top", "bottom")
        The deletion orders.
    n_points : int, default 12
        About how many values of k per layer (see `deletion_counts`).
    warning_counts : dict of str to Counter, optional
        When given, each measure's warnings are counted into ``warning_counts[label]`` instead of printed.
    progress : bool, default True
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per (measure, layer, order, k), with columns ``setting``, ``model``, ``layer``, ``order``,
        ``k``, ``variance_removed``, ``measure`` and ``value``.

    Raises
    ------
    ValueError
        If a layer has no variance or rank below 2, or a measure returns a non-finite value.
    """
    layer_pcs = [principal_components(x) for x in network.layers]
    grids = [deletion_counts(p.rank, n_points) for p in layer_pcs]
    total = len(orders) * sum(len(g) for g in grids) * len(specs)
    rows = []
    with tqdm(total=total, desc=f"{network.setting}: deleting components", disable=not progress) as bar:
        for spec in specs:
            counts: Counter[str] = Counter()
            with counting_warnings(counts):
                for layer_id, x, pcs, grid in zip(network.layer_ids, network.layers, layer_pcs, grids, strict=True):
                    for order in orders:
                        for k in grid:
                            damaged = delete_components(x, pcs, k, order)
                            value = spec(x, damaged)
                            bar.update(1)
                            rows.append(
                                {
                                    "setting": network.setting,
                                    "model": model_name(network),
                                    "layer": layer_id,
                                    "order": order,
                                    "k": k,
                                    "variance_removed": variance_removed(pcs, k, order),
                                    "measure": spec.label,
                                    "value": value,
                                }
                            )
            if warning_counts is not None:
                warning_counts.setdefault(spec.label, Counter()).update(counts)
    return pd.DataFrame(rows)


def spearman_with_k(k: Sequence[float], values: Sequence[float]) -> float:
    """Compute the Spearman correlation of k with the values, NaN when the values do not change at all.

    Values are rounded to TIE_DIGITS (10) significant digits first, so floating-point jitter around a
    constant (1.0 +- 1e-15 for a saturated measure) is not ranked as a trend.

    Parameters
    ----------
    k : sequence of float
        The numbers of components deleted.
    values : sequence of float
        The measure's values at those k.

    Returns
    -------
    float
        The rank correlation, or NaN when the rounded values are constant (no trend).
    """
    v = np.asarray(values, dtype=np.float64)
    rounded = np.array([float(f"{x:.{TIE_DIGITS}g}") for x in v])
    if np.ptp(rounded) == 0:
        return float("nan")
    return float(spearmanr(np.asarray(k, dtype=np.float64), rounded).statistic)


def _first_detection(
    variance: Sequence[float], values: Sequence[float], floor: float, larger_is_similar: bool
) -> float:
    """Find the smallest fraction of variance removed at which the damaged layer scores past the seed floor.

    Past means below the floor for a similarity, above it for a distance; NaN if it never does on the grid.
    """
    for removed, value in zip(variance, values, strict=True):
        if (value < floor) if larger_is_similar else (value > floor):
            return float(removed)
    return float("nan")


def sensitivity_summary(curves: pd.DataFrame, noise_floor: pd.DataFrame, specs: Sequence[MeasureSpec]) -> pd.DataFrame:
    """Summarise the deletion curves per setting, order and measure.

    For each, the trend with k, the seed floor, and how much variance must go before the damaged layer
    scores past the floor (is "detected").

    Parameters
    ----------
    curves : pandas.DataFrame
        The output of `deletion_curves` (possibly for several settings).
    noise_floor : pandas.DataFrame
        The output of `reprsim.validation.seeds.same_layer_similarity` (columns ``setting``, ``measure``,
        ``layer``, ``mean``).
    specs : sequence of MeasureSpec
        The measures of `curves`, for their direction.

    Returns
    -------
    pandas.DataFrame
        Columns ``setting``, ``order``, ``measure``; ``spearman_mean`` (of k with the value, mean over
        layers, flat layers excluded; see `spearman_with_k`), ``spearman_worst`` (the layer furthest from
        the expected sign), ``flat_layers``, ``n_layers``, ``expected_sign`` (-1 for similarities, +1 for
        distances), ``value_at_max_k`` (mean over layers), ``noise_floor`` (mean over layers),
        ``detected_layers`` and ``variance_removed_at_detection`` (median over the detected layers).

    Raises
    ------
    KeyError
        If `curves` holds a measure that is not in `specs`.
    """
    by_label = {s.label: s for s in specs}
    floors = noise_floor.set_index(["setting", "measure", "layer"])["mean"]
    rows = []
    for (setting, order, measure), part in curves.groupby(["setting", "order", "measure"], sort=False):
        spec = by_label[str(measure)]
        rhos, detections, last_values, layer_floors = [], [], [], []
        for layer, curve in part.groupby("layer", sort=True):
            curve = curve.sort_values("k")
            rhos.append(spearman_with_k(curve["k"], curve["value"]))
            last_values.append(float(curve["value"].iloc[-1]))
            key = (setting, measure, layer)
            if key in floors.index:
                floor = float(floors.loc[key])
                layer_floors.append(floor)
                detections.append(
                    _first_detection(curve["variance_removed"], curve["value"], floor, spec.larger_is_similar)
                )
        rho = np.array(rhos)
        detected = np.array(detections)
        rows.append(
            {
                "setting": setting,
                "order": order,
                "measure": measure,
                "spearman_mean": float(np.nanmean(rho)) if np.isfinite(rho).any() else np.nan,
                "spearman_worst": _worst(rho, spec.larger_is_similar),
                "flat_layers": int(np.isnan(rho).sum()),
                "n_layers": len(rho),
                "expected_sign": -1 if spec.larger_is_similar else 1,
                "value_at_max_k": float(np.mean(last_values)),
                "noise_floor": float(np.mean(layer_floors)) if layer_floors else np.nan,
                "detected_layers": int(np.isfinite(detected).sum()),
                "variance_removed_at_detection": (
                    float(np.nanmedian(detected)) if np.isfinite(detected).any() else np.nan
                ),
            }
        )
    return pd.DataFrame(rows)


def _worst(rho: np.ndarray, larger_is_similar: bool) -> float:
    """Pick the least convincing trend over layers: the largest rho of a similarity, the smallest of a distance."""
    finite = rho[np.isfinite(rho)]
    if finite.size == 0:
        return float("nan")
    return float(finite.max() if larger_is_similar else finite.min())
