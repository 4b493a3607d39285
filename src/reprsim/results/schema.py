"""The results table's schema: its columns, their types, and the checks every table passes on construction.

A broken table fails where it is made, with the offending row named, instead of as a NaN in a figure.
Symmetric measures store each unordered pair once (direction "sym"); directed measures store both orders
(direction "a->b", value = sim(a -> b)).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from reprsim.inference.uncertainty import STAT_COLUMNS

COLUMNS: tuple[str, ...] = (
    "model_a",
    "layer_a",
    "model_b",
    "layer_b",
    "measure",
    "direction",
    "value",
    "level",
    "n_rows",
    "subsample",
)
DIRECTED = "a->b"
SYMMETRIC = "sym"
DIRECTIONS: tuple[str, ...] = (DIRECTED, SYMMETRIC)
LEVELS: tuple[str, ...] = ("representation", "attention")

STRING_COLUMNS = ("model_a", "model_b", "measure", "direction", "level")
# The optional statistics columns: nullable floats (pandas "Float64", missing = <NA>, never NaN), all six
# present as soon as one is, right after `COLUMNS`.
STAT_DTYPE = "Float64"


def describe_row(frame: pd.DataFrame, index: Any) -> str:
    """Name a row by its position and its pair, for error messages.

    Parameters
    ----------
    frame
        Rows with the pair columns.
    index
        The row's index label.

    Returns
    -------
    str
        E.g. ``"row 3 (model_a='a', layer_a=0, model_b='b', layer_b=1, measure='linear_cka')"``.
    """
    row = frame.loc[index]
    # Plain Python values, so that a layer reads layer_a=1 rather than layer_a=np.int64(1).
    plain = {col: row[col].item() if isinstance(row[col], np.generic) else row[col]
             for col in ("model_a", "layer_a", "model_b", "layer_b", "measure")}
    parts = [f"{col}={value!r}" for col, value in plain.items()]
    return f"row {index} ({', '.join(parts)})"


def _first_bad(frame: pd.DataFrame, bad: pd.Series | np.ndarray) -> Any:
    """Index label of the first row flagged in a boolean mask."""
    return frame.index[np.flatnonzero(np.asarray(bad))[0]]


def _as_int_column(frame: pd.DataFrame, column: str, minimum: int) -> pd.Series:
    """Convert a column to int64, refusing missing, fractional, boolean or too-small values by row."""
    series = frame[column]
    if pd.api.types.is_bool_dtype(series):
        raise ValueError(f"results table column {column!r} must hold integers, got booleans")
    numeric = pd.to_numeric(series, errors="coerce")
    bad = numeric.isna() | (numeric != np.floor(numeric.astype(float))) | (numeric < minimum)
    if bad.any():
        where = _first_bad(frame, bad)
        raise ValueError(
            f"results table {describe_row(frame, where)}: {column} must be an integer >= {minimum}, "
            f"got {series.loc[where]!r}"
        )
    return numeric.astype(np.int64)


def _as_bool_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """Convert a column to bool, accepting real booleans and their CSV spellings only."""
    series = frame[column]
    if pd.api.types.is_bool_dtype(series):
        return series.astype(bool)
    spelled = {"True": True, "False": False, "true": True, "false": False, True: True, False: False}
    mapped = series.map(lambda v: spelled.get(v) if isinstance(v, (str, bool, np.bool_)) else None)
    bad = mapped.isna()
    if bad.any():
        where = _first_bad(frame, bad)
        raise ValueError(
            f"results table {describe_row(frame, where)}: {column} must be True or False, "
            f"got {series.loc[where]!r}"
        )
    return mapped.astype(bool)


def _as_string_column(frame: pd.DataFrame, column: str, allowed: Sequence[str] | None) -> pd.Series:
    """Check a text column: no missing or empty entries, and only `allowed` values when given."""
    series = frame[column]
    is_text = series.map(lambda v: isinstance(v, str) and v != "")
    if not is_text.all():
        where = _first_bad(frame, ~is_text)
        raise ValueError(
            f"results table {describe_row(frame, where)}: {column} must be a non-empty string, "
            f"got {series.loc[where]!r}"
        )
    if allowed is not None:
        bad = ~series.isin(list(allowed))
        if bad.any():
            where = _first_bad(frame, bad)
            raise ValueError(
                f"results table {describe_row(frame, where)}: {column} must be one of {list(allowed)}, "
                f"got {series.loc[where]!r}"
            )
    return series.astype(object)


def _check_one_per_measure(frame: pd.DataFrame, column: str) -> None:
    """A measure is either symmetric or directed, and lives at one level; mixing means a merge bug."""
    counts = frame.groupby("measure", sort=False)[column].nunique()
    mixed = counts[counts > 1]
    if len(mixed):
        measure = mixed.index[0]
        seen = sorted(frame.loc[frame["measure"] == measure, column].unique())
        raise ValueError(f"results table: measure {measure!r} has rows with several {column} values {seen}")


def _check_unique_pairs(frame: pd.DataFrame) -> None:
    """Each (pair, measure) once; for symmetric measures the unordered pair once."""
    sym = (frame["direction"] == SYMMETRIC).to_numpy()
    ma, la = frame["model_a"].to_numpy(), frame["layer_a"].to_numpy()
    mb, lb = frame["model_b"].to_numpy(), frame["layer_b"].to_numpy()
    # Put symmetric pairs in a canonical order so (a, b) and (b, a) collide.
    swap = sym & ((ma > mb) | ((ma == mb) & (la > lb)))
    key = pd.DataFrame(
        {
            "measure": frame["measure"].to_numpy(),
            "model_1": np.where(swap, mb, ma),
            "layer_1": np.where(swap, lb, la),
            "model_2": np.where(swap, ma, mb),
            "layer_2": np.where(swap, la, lb),
        }
    )
    dup = key.duplicated(keep="first").to_numpy()
    if dup.any():
        where = _first_bad(frame, dup)
        raise ValueError(f"results table {describe_row(frame, where)} duplicates an earlier row's pair")


def validate_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a results frame against the schema and normalise its dtypes.

    Parameters
    ----------
    frame
        Rows with at least the `COLUMNS`; columns beyond the fixed schema are kept as they are (after the
        schema columns).

    Returns
    -------
    pandas.DataFrame
        A copy with a fresh index and the contract's dtypes: strings for the names, int64 layers and
        ``n_rows``, float64 values, bool ``subsample`` (CSV spellings ``"True"``/``"false"`` accepted).
        When the frame has any of the statistics columns (`STAT_COLUMNS`), all six follow the schema
        columns as nullable ``Float64`` (a column not given is all <NA>); without them none is added.

    Raises
    ------
    ValueError
        If `frame` is not a DataFrame, a column is missing or duplicated, or a row breaks the schema
        (naming the row and its pair): an empty or missing name, a layer below 0, ``n_rows`` below 1, a
        non-integer count, a value that is not a finite number, a direction not in `DIRECTIONS`, a level
        not in `LEVELS`, a ``subsample`` that is not a boolean, a measure with rows of several directions
        or levels, or a pair listed twice for a measure (a symmetric pair in either order); or a statistic
        that is NaN, infinite or not a number (missing is <NA> or None), a negative ``se``, a ``p_value``
        outside (0, 1], a ``calibrated`` outside [0, 1], or ``ci_low`` above ``ci_high``.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"a results table needs a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"results table is missing columns {missing}; it has {list(frame.columns)}")
    if frame.columns.duplicated().any():
        raise ValueError(
            f"results table has duplicate columns {list(frame.columns[frame.columns.duplicated()])}"
        )
    extra = [c for c in frame.columns if c not in COLUMNS and c not in STAT_COLUMNS]
    has_stats = any(c in frame.columns for c in STAT_COLUMNS)
    frame = frame.reset_index(drop=True)
    out = pd.DataFrame(index=frame.index)
    out["model_a"] = _as_string_column(frame, "model_a", None)
    out["layer_a"] = _as_int_column(frame, "layer_a", 0)
    out["model_b"] = _as_string_column(frame, "model_b", None)
    out["layer_b"] = _as_int_column(frame, "layer_b", 0)
    out["measure"] = _as_string_column(frame, "measure", None)
    out["direction"] = _as_string_column(frame, "direction", DIRECTIONS)
    values = pd.to_numeric(frame["value"], errors="coerce").astype(np.float64)
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        where = _first_bad(frame, bad)
        raise ValueError(
            f"results table {describe_row(frame, where)}: value must be a finite number, "
            f"got {frame['value'].loc[where]!r}"
        )
    out["value"] = values
    out["level"] = _as_string_column(frame, "level", LEVELS)
    out["n_rows"] = _as_int_column(frame, "n_rows", 1)
    out["subsample"] = _as_bool_column(frame, "subsample")
    if has_stats:
        for column in STAT_COLUMNS:
            out[column] = _as_stat_column(frame, column)
        _check_stat_ranges(out)
    for column in extra:
        out[column] = frame[column]
    _check_one_per_measure(out, "direction")
    _check_one_per_measure(out, "level")
    _check_unique_pairs(out)
    return out


def _as_stat_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """One statistics column as nullable Float64: <NA> or None is missing; NaN, Inf and non-numbers are errors.

    NaN is refused rather than read as missing so that a failed computation cannot pass for "not computed".
    """
    if column not in frame.columns:
        return pd.Series(pd.array([None] * len(frame), dtype=STAT_DTYPE), index=frame.index)
    series = frame[column]
    if isinstance(series.dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_numeric_dtype(series) \
            and not pd.api.types.is_bool_dtype(series):
        missing = series.isna().to_numpy(dtype=bool)
        data = series.to_numpy(dtype=np.float64, na_value=0.0)
        numeric = np.ones(len(series), dtype=bool)
    else:
        raw = series.to_numpy(dtype=object)
        missing = np.array([v is None or v is pd.NA for v in raw], dtype=bool)
        numeric = np.array([m or (isinstance(v, (int, float, np.integer, np.floating))
                                  and not isinstance(v, (bool, np.bool_))) for v, m in zip(raw, missing, strict=True)],
                           dtype=bool)
        data = np.array([float(v) if n and not m else 0.0 for v, n, m in zip(raw, numeric, missing, strict=True)],
                        dtype=np.float64)
    bad = ~missing & (~numeric | ~np.isfinite(data))
    if bad.any():
        where = _first_bad(frame, bad)
        raise ValueError(
            f"results table {describe_row(frame, where)}: {column} must be a finite number or missing "
            f"(<NA> or None, never NaN), got {series.loc[where]!r}"
        )
    cells = [None if m else float(v) for v, m in zip(data, missing, strict=True)]
    return pd.Series(pd.array(cells, dtype=STAT_DTYPE), index=frame.index)


def _check_stat_ranges(frame: pd.DataFrame) -> None:
    """Check se >= 0, 0 < p <= 1, 0 <= calibrated <= 1 and ci_low <= ci_high; a missing statistic passes.

    The estimate itself may lie outside its interval (a bias-corrected or percentile interval need not
    contain it), so that is not checked.
    """
    def values(column: str) -> np.ndarray:
        return frame[column].to_numpy(dtype=np.float64, na_value=np.nan)

    se, p, calibrated = values("se"), values("p_value"), values("calibrated")
    low, high = values("ci_low"), values("ci_high")
    with np.errstate(invalid="ignore"):
        checks = [
            (se < 0, "se must be >= 0", "se"),
            ((p <= 0) | (p > 1), "p_value must be in (0, 1]", "p_value"),
            ((calibrated < 0) | (calibrated > 1), "calibrated must be in [0, 1]", "calibrated"),
            (low > high, "ci_low must be <= ci_high", "ci_low"),
        ]
    for bad, rule, column in checks:
        if bad.any():
            where = _first_bad(frame, bad)
            got = f"ci_low={low[frame.index.get_loc(where)]!r}, ci_high={high[frame.index.get_loc(where)]!r}" \
                if column == "ci_low" else f"{frame[column].loc[where]!r}"
            raise ValueError(f"results table {describe_row(frame, where)}: {rule}, got {got}")


def check_provenance(provenance: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check that provenance survives a JSON round trip, since that is how it is stored.

    Parameters
    ----------
    provenance
        A mapping, or ``None`` for none.

    Returns
    -------
    dict
        The provenance after the round trip (``{}`` for ``None``).

    Raises
    ------
    ValueError
        If it is not a mapping or not JSON-serialisable (NaN and Inf included).
    """
    if provenance is None:
        return {}
    if not isinstance(provenance, Mapping):
        raise ValueError(f"provenance must be a mapping, got {type(provenance).__name__}")
    try:
        return dict(json.loads(json.dumps(dict(provenance), allow_nan=False)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"provenance must be JSON-serialisable: {exc}") from exc
