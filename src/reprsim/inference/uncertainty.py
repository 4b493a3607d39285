"""`Uncertainty`: the statistics attached to one value of a results table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# The results-table columns an `Uncertainty` fills, in order; each is missing (<NA>) when not computed.
STAT_COLUMNS: tuple[str, ...] = ("se", "ci_low", "ci_high", "null_mean", "p_value", "calibrated")


@dataclass
class Uncertainty:
    """What is known about one value beyond its estimate; ``None`` where a statistic was not computed.

    Attributes
    ----------
    se
        Standard error (delete-one-block jackknife, or the bootstrap's standard deviation).
    ci_low, ci_high
        The interval of level 1 - alpha.
    null_mean
        The value's mean under the null of unpaired rows (analytic, chance level or permutation mean).
    p_value
        The permutation p-value of the value against its null.
    calibrated
        The calibrated score (`reprsim.inference.calibrated_score`).
    ci_method, null_method
        How the interval and the null were obtained (e.g. ``"bootstrap (exact)"``, ``"analytic"``).
    replicates
        The replicates the interval came from, for paired differences: (G,) leave-one-block-out values
        when `replicate_kind` is ``"jackknife"``, (B,) bootstrap values when ``"bootstrap"``.
    replicate_kind
        ``"jackknife"``, ``"bootstrap"`` or ``""``.
    null_values
        (K,) the value under each of the study's shared row permutations (the k-th permutation is the same
        for every pair of a measure), for aggregation-aware calibration of model-level scores.
    """

    se: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    null_mean: float | None = None
    p_value: float | None = None
    calibrated: float | None = None
    ci_method: str = ""
    null_method: str = ""
    replicates: np.ndarray | None = field(default=None, repr=False)
    replicate_kind: str = ""
    null_values: np.ndarray | None = field(default=None, repr=False)

    def columns(self) -> dict[str, Any]:
        """The results-table columns, ``None`` for what was not computed."""
        return {c: getattr(self, c) for c in STAT_COLUMNS}

    def merged(self, other: Uncertainty) -> Uncertainty:
        """A copy with each statistic `other` has and this lacks (an interval from one path, a null from another)."""
        out = Uncertainty(**{k: getattr(self, k) for k in self.__dataclass_fields__})
        for k in self.__dataclass_fields__:
            if _missing(getattr(out, k)) and not _missing(getattr(other, k)):
                setattr(out, k, getattr(other, k))
        return out


def _missing(value: object) -> bool:
    """Whether a field holds nothing: None or an empty label.

    An array is never missing; testing it with ``in (None, "")`` would compare it element by element.
    """
    return value is None or (isinstance(value, str) and value == "")
