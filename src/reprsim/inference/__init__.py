"""Statistical inference for similarity values: sentence blocks, intervals, nulls and calibrated scores.

Pure numpy functions over replicates and null values; the engine's families compute the replicates and null
values (docs/guide/statistics.md says which method each measure uses).
"""

from .blocks import block_of_rows, bootstrap_counts, sentence_blocks
from .combine import (
    REPLICATE_KINDS,
    InferenceWarning,
    difference_statistics,
    replicate_statistics,
)
from .intervals import (
    basic_interval,
    jackknife_influence,
    jackknife_summary,
    linearised_bootstrap,
    normal_interval,
    percentile_interval,
)
from .nulls import (
    Calibration,
    RVSideMoments,
    calibrate_layers_max,
    calibrate_value,
    calibrated_score,
    knn_chance,
    null_threshold,
    permutation_p_value,
    rv_null_moments,
    rv_null_p_value,
    rv_null_skewness,
    rv_side_moments,
)
from .options import CI_METHODS, COMPARE_ARGUMENTS, JACKKNIFE_METHODS, NO_INFERENCE, NULL_METHODS, InferenceOptions
from .uncertainty import STAT_COLUMNS, Uncertainty

__all__ = [
    "CI_METHODS",
    "COMPARE_ARGUMENTS",
    "JACKKNIFE_METHODS",
    "NO_INFERENCE",
    "NULL_METHODS",
    "REPLICATE_KINDS",
    "STAT_COLUMNS",
    "Calibration",
    "InferenceOptions",
    "InferenceWarning",
    "RVSideMoments",
    "Uncertainty",
    "basic_interval",
    "block_of_rows",
    "bootstrap_counts",
    "calibrate_layers_max",
    "calibrate_value",
    "calibrated_score",
    "difference_statistics",
    "jackknife_influence",
    "jackknife_summary",
    "knn_chance",
    "linearised_bootstrap",
    "normal_interval",
    "null_threshold",
    "percentile_interval",
    "permutation_p_value",
    "replicate_statistics",
    "rv_null_moments",
    "rv_null_p_value",
    "rv_null_skewness",
    "rv_side_moments",
    "sentence_blocks",
]
