"""The results table: one row per (representation a, representation b, measure, direction).

The table is the hand-over point between the all-pairs engine and everything downstream (aggregation,
clustering, figures). Its schema is fixed (docs/design/contracts.md) and checked on construction, so a
broken table fails where it is made, with the offending row named, instead of as a NaN in a figure.

A representation is identified by a ``LayerId(model, layer)`` tuple - never by a string that has to be
parsed back. Symmetric measures store each unordered pair once (direction "sym"); directed measures store
both orders (direction "a->b", value = sim(a -> b)).

A table may carry statistics of its values: the optional nullable columns se, ci_low, ci_high, null_mean,
p_value and calibrated (`reprsim.inference.STAT_COLUMNS`), and per-row replicate and null arrays kept beside
the frame and saved to a ``<file>.stats.npz`` sidecar (`reprsim.results.arrays`); `ResultTable.uncertainty`
reads them back as one `reprsim.inference.Uncertainty`.
"""

from reprsim.layers import LayerId
from reprsim.results.arrays import REPLICATE_KINDS, RowArrays, StaleStatsWarning, stats_sidecar
from reprsim.results.files import FORMAT_OF_SUFFIX, FORMATS, PROVENANCE_KEY, check_output_path, provenance_sidecar
from reprsim.results.matrix import LayerMatrix
from reprsim.results.schema import COLUMNS, DIRECTED, DIRECTIONS, LEVELS, STAT_DTYPE, SYMMETRIC, validate_frame
from reprsim.results.table import ResultTable

__all__ = [
    "COLUMNS",
    "DIRECTED",
    "DIRECTIONS",
    "FORMATS",
    "FORMAT_OF_SUFFIX",
    "LEVELS",
    "PROVENANCE_KEY",
    "REPLICATE_KINDS",
    "STAT_DTYPE",
    "SYMMETRIC",
    "LayerId",
    "LayerMatrix",
    "ResultTable",
    "RowArrays",
    "StaleStatsWarning",
    "check_output_path",
    "provenance_sidecar",
    "stats_sidecar",
    "validate_frame",
]
