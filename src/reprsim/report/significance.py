"""When a value is "not above its null", and how the report writes intervals and verdicts.

One rule decides both the mark on a heatmap cell and the words in a table ("not significant", "at chance"),
in this order of evidence:

1. a permutation p-value: not above the null when p >= alpha ("not significant");
2. else a calibrated score: when it is 0, i.e. the value does not exceed the null's (1 - alpha) quantile
   ("at chance");
3. else an analytic null mean and an interval: when the interval reaches the null mean, i.e. ci_low <= null_mean
   for a similarity or ci_high >= null_mean for a distance ("at chance");
4. else nothing is claimed either way.

alpha is the level the statistics were computed at (``provenance["inference"]["options"]["alpha"]``, default
0.05). p-values and calibrated scores are taken as the comparison computed them (towards "more similar").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from reprsim.inference.uncertainty import STAT_COLUMNS
from reprsim.results import LayerId, ResultTable

NOT_SIGNIFICANT = "not significant"
AT_CHANCE = "at chance"


@dataclass(frozen=True)
class StatsView:
    """What the report says about a table's statistics: the level, the options and each measure's methods.

    Attributes
    ----------
    alpha : float
        The level (intervals are 1 - alpha).
    options : dict
        ``provenance["inference"]["options"]`` (empty when not recorded).
    methods : dict of str to (str, str)
        Per measure, (interval method, null method); ``""`` where not recorded.
    """

    alpha: float
    options: dict[str, object] = field(default_factory=dict)
    methods: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def level(self) -> str:
        """The interval's level as a percentage, e.g. ``"95%"``."""
        return f"{100 * (1 - self.alpha):g}%"


def stats_view(table: ResultTable) -> StatsView | None:
    """The table's statistics for the report, or None when it has none to show (the report then has no marks).

    Parameters
    ----------
    table : ResultTable
        The results table.

    Returns
    -------
    StatsView or None
        None when no statistics column holds a value and no row has replicates or null values.
    """
    has_values = table.has_stats() and bool(table.frame[list(STAT_COLUMNS)].notna().to_numpy().any())
    if not has_values and not table.has_arrays():
        return None
    options = table.inference.get("options")
    return StatsView(table.alpha, dict(options) if isinstance(options, Mapping) else {},
                     {m: table.inference_methods(m) for m in table.measures()})


@dataclass(frozen=True)
class CellStats:
    """The statistics of a block of cells, NaN where missing.

    Attributes
    ----------
    low, high, null_mean, p_value, calibrated : numpy.ndarray
        Matrices of the block's shape.
    """

    low: np.ndarray
    high: np.ndarray
    null_mean: np.ndarray
    p_value: np.ndarray
    calibrated: np.ndarray


def cell_stats(table: ResultTable, measure: str, rows: Sequence[LayerId], columns: Sequence[LayerId]) -> CellStats:
    """Read the statistics of a block of pairs.

    Parameters
    ----------
    table : ResultTable
        The results table.
    measure : str
        A measure of the table.
    rows, columns : sequence of LayerId
        The block.

    Returns
    -------
    CellStats
        NaN where a statistic is missing or a pair was not computed.
    """
    def read(column: str) -> np.ndarray:
        return table.stat_matrix(measure, column, rows, columns)

    return CellStats(read("ci_low"), read("ci_high"), read("null_mean"), read("p_value"), read("calibrated"))


def not_above_null(stats: CellStats, larger_is_similar: bool, alpha: float) -> np.ndarray:
    """Which cells are not above their null, by the module's rule.

    Parameters
    ----------
    stats : CellStats
        The cells' statistics.
    larger_is_similar : bool
        False for distances (more similar is lower).
    alpha : float
        The level.

    Returns
    -------
    numpy.ndarray
        Boolean, True where the cell gets the mark.
    """
    has_p = np.isfinite(stats.p_value)
    has_cal = np.isfinite(stats.calibrated)
    reaches = stats.low <= stats.null_mean if larger_is_similar else stats.high >= stats.null_mean
    with np.errstate(invalid="ignore"):
        return np.where(has_p, stats.p_value >= alpha,
                        np.where(has_cal, stats.calibrated <= 0.0, np.nan_to_num(reaches, nan=0.0) > 0))


def verdict(p_value: float | None, calibrated: float | None, low: float | None, high: float | None,
            null_mean: float | None, larger_is_similar: bool, alpha: float) -> str:
    """The words for one value against its null: "not significant", "at chance" or ``""``.

    Parameters
    ----------
    p_value, calibrated, low, high, null_mean : float or None
        The value's statistics (None or NaN when missing).
    larger_is_similar : bool
        False for distances.
    alpha : float
        The level.

    Returns
    -------
    str
        `NOT_SIGNIFICANT` when p >= alpha, `AT_CHANCE` when the calibrated score is 0 or the interval reaches
        the null mean, ``""`` otherwise.
    """
    def known(x: float | None) -> bool:
        return x is not None and math.isfinite(x)

    if known(p_value):
        return NOT_SIGNIFICANT if float(p_value) >= alpha else ""  # type: ignore[arg-type]
    if known(calibrated):
        return AT_CHANCE if float(calibrated) <= 0.0 else ""  # type: ignore[arg-type]
    if known(null_mean):
        bound = low if larger_is_similar else high
        if known(bound):
            reached = float(bound) <= float(null_mean) if larger_is_similar else float(bound) >= float(null_mean)  # type: ignore[arg-type]
            return AT_CHANCE if reached else ""
    return ""


def interval_text(value: float, low: float | None, high: float | None, digits: int = 3) -> str:
    """Write a value with its interval, e.g. ``"0.830 [0.790, 0.860]"``; the value alone without one.

    Parameters
    ----------
    value : float
        The estimate.
    low, high : float or None
        The interval's ends (None or NaN when missing).
    digits : int, default 3
        Decimals.

    Returns
    -------
    str
        The text.
    """
    text = f"{value:.{digits}f}"
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def p_text(p_value: float | None, verdict_text: str) -> str:
    """Write a p-value and its verdict, e.g. ``"p = 0.004"`` or ``"not significant (p = 0.31)"``.

    Parameters
    ----------
    p_value : float or None
        The p-value (None or NaN when missing).
    verdict_text : str
        The `verdict`.

    Returns
    -------
    str
        The text; ``""`` with neither.
    """
    shown = f"p = {p_value:.2g}" if p_value is not None and math.isfinite(p_value) else ""
    if verdict_text and shown:
        return f"{verdict_text} ({shown})"
    return verdict_text or shown
