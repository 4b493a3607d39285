"""The long per-row arrays of a results table: resampling replicates and permutation-null values.

They are too long for a column (G jackknife values or B bootstrap replicates, K null values per row), so a
`ResultTable` keeps them beside its frame, by row, and `save` writes them to a sidecar next to the results file:
``<file>.stats.npz`` (numpy ``savez_compressed``; read with ``allow_pickle=False``). The sidecar holds, for the
rows that have arrays, their pair keys (measure, model_a, layer_a, model_b, layer_b), so that rows are matched
by pair rather than by position, and every row's arrays concatenated into one float vector with offsets:

- ``replicate_key_*`` / ``replicate_offsets`` / ``replicate_values`` / ``replicate_kinds``,
- ``null_key_*`` / ``null_offsets`` / ``null_values``,
- ``format`` (the layout's version, 1).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprsim.inference.uncertainty import STAT_COLUMNS

REPLICATE_KINDS: tuple[str, ...] = ("jackknife", "bootstrap")
# The record keys that carry arrays rather than columns.
ARRAY_KEYS: tuple[str, ...] = ("replicates", "replicate_kind", "null_values")
SIDECAR_FORMAT = 1
KEY_COLUMNS = ("measure", "model_a", "layer_a", "model_b", "layer_b")


@dataclass(frozen=True)
class RowArrays:
    """The arrays of one results row (read-only).

    Attributes
    ----------
    replicates
        (G,) leave-one-block-out values or (B,) bootstrap replicates, or None.
    replicate_kind
        ``"jackknife"`` or ``"bootstrap"`` with replicates, ``""`` without.
    null_values
        (K,) the value under each shared row permutation, or None.
    """

    replicates: np.ndarray | None = None
    replicate_kind: str = ""
    null_values: np.ndarray | None = None

    @property
    def empty(self) -> bool:
        """Whether the row has no array at all."""
        return self.replicates is None and self.null_values is None


class StaleStatsWarning(UserWarning):
    """A results file's statistics sidecar is missing or does not match the table."""


def stats_sidecar(path: str | Path) -> Path:
    """Where a results file keeps its replicate and null arrays.

    Parameters
    ----------
    path
        The results file (Parquet or CSV).

    Returns
    -------
    pathlib.Path
        ``<file>.stats.npz`` beside it.
    """
    path = Path(path)
    return path.with_name(path.name + ".stats.npz")


def _vector(value: Any, what: str, where: str) -> np.ndarray | None:
    """A 1-D, non-empty, finite float copy of `value` (read-only), or None for None."""
    if value is None:
        return None
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"results table {where}: {what} must be a 1-D array of numbers: {exc}") from exc
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"results table {where}: {what} must be a non-empty 1-D array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"results table {where}: {what} must be finite, got {int((~np.isfinite(array)).sum())} "
                         "NaN or infinite entries")
    array.setflags(write=False)
    return array


def row_arrays(record: Mapping[str, Any], where: str) -> RowArrays:
    """Check and copy the arrays of one record (the `ARRAY_KEYS`; each optional).

    Parameters
    ----------
    record
        A row's mapping.
    where
        The row, for error messages.

    Returns
    -------
    RowArrays
        The checked arrays.

    Raises
    ------
    ValueError
        If an array is not a non-empty finite 1-D vector, the kind is not one of `REPLICATE_KINDS` when
        replicates are given, or a kind is given without replicates (naming the row).
    """
    replicates = _vector(record.get("replicates"), "replicates", where)
    kind = record.get("replicate_kind")
    kind = "" if kind is None else kind
    if replicates is not None and kind not in REPLICATE_KINDS:
        raise ValueError(f"results table {where}: replicate_kind must be one of {list(REPLICATE_KINDS)} when "
                         f"replicates are given, got {kind!r}")
    if replicates is None and kind != "":
        raise ValueError(f"results table {where}: replicate_kind {kind!r} given without replicates")
    return RowArrays(replicates, str(kind), _vector(record.get("null_values"), "null_values", where))


def split_records(records: Iterable[Mapping[str, Any]]) -> tuple[pd.DataFrame, dict[int, dict[str, Any]]]:
    """Turn row records into a frame (not validated yet) and each row's array keys (`ARRAY_KEYS`).

    The statistics columns are built apart, as object columns of floats and None: a DataFrame would turn
    None into NaN, which the schema refuses as a statistic.

    Parameters
    ----------
    records
        One mapping per row.

    Returns
    -------
    tuple of (pandas.DataFrame, dict)
        The frame (the schema's columns when there are no records), and row position -> its array keys for
        the rows that have any.
    """
    from .schema import COLUMNS

    rows = [dict(r) for r in records]
    arrays = {i: {k: r.pop(k) for k in ARRAY_KEYS if k in r} for i, r in enumerate(rows)}
    stats = {c: [r.pop(c, None) for r in rows] for c in STAT_COLUMNS if any(c in r for r in rows)}
    frame = pd.DataFrame(rows, columns=list(COLUMNS)) if not rows else pd.DataFrame(rows)
    for column, values in stats.items():
        frame[column] = pd.Series(values, index=frame.index, dtype=object)
    return frame, {i: a for i, a in arrays.items() if a}


def stack_parts(parts: Sequence[tuple[pd.DataFrame, Mapping[int, RowArrays]]]) -> tuple[
        pd.DataFrame, dict[int, RowArrays]]:
    """Stack validated frames and their arrays (renumbered); statistics a part lacks are missing, not NaN.

    Parameters
    ----------
    parts
        (frame, row position -> arrays) of each table, in order.

    Returns
    -------
    tuple of (pandas.DataFrame, dict)
        The stacked frame and arrays.
    """
    with_stats = [STAT_COLUMNS[0] in frame.columns for frame, _ in parts]
    frames = [frame for frame, _ in parts]
    if any(with_stats) and not all(with_stats):
        frames = [f if s else f.assign(**{c: pd.array([None] * len(f), dtype="Float64") for c in STAT_COLUMNS})
                  for f, s in zip(frames, with_stats, strict=True)]
    arrays: dict[int, RowArrays] = {}
    offset = 0
    for frame, own in parts:
        arrays.update({offset + row: found for row, found in own.items()})
        offset += len(frame)
    return pd.concat(frames, ignore_index=True), arrays


def expects_arrays(inference: Mapping[str, Any]) -> bool:
    """Whether a table's provenance ``"inference"`` entry asks for replicates or permutations.

    Parameters
    ----------
    inference
        The entry (``{"options": InferenceOptions.as_dict(), ...}``).

    Returns
    -------
    bool
        True for ci ``"bootstrap"`` or ``"jackknife"``, or null ``"permutation"``.
    """
    options = inference.get("options")
    if not isinstance(options, Mapping):
        return False
    return options.get("ci") in ("bootstrap", "jackknife") or options.get("null") == "permutation"


def _keys(frame: pd.DataFrame, rows: list[int]) -> dict[str, np.ndarray]:
    """The pair keys of some rows as plain numpy arrays (unicode and int64, so no pickle is needed)."""
    part = frame.iloc[rows]
    return {
        "measure": np.array(part["measure"].tolist(), dtype=str),
        "model_a": np.array(part["model_a"].tolist(), dtype=str),
        "layer_a": part["layer_a"].to_numpy(dtype=np.int64),
        "model_b": np.array(part["model_b"].tolist(), dtype=str),
        "layer_b": part["layer_b"].to_numpy(dtype=np.int64),
    }


def _packed(frame: pd.DataFrame, arrays: Mapping[int, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """Rows' keys, offsets and concatenated values of one kind of array."""
    rows = sorted(arrays)
    lengths = [arrays[r].size for r in rows]
    out = {f"{prefix}_key_{k}": v for k, v in _keys(frame, rows).items()}
    out[f"{prefix}_offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    out[f"{prefix}_values"] = (np.concatenate([arrays[r] for r in rows]) if rows else np.empty(0)).astype(np.float64)
    return out


def write_stats_sidecar(frame: pd.DataFrame, arrays: Mapping[int, RowArrays], path: str | Path) -> Path | None:
    """Write the arrays of a table's rows beside its results file, or remove a stale sidecar when there are none.

    Parameters
    ----------
    frame
        The table's validated rows.
    arrays
        Row position -> its arrays.
    path
        The results file.

    Returns
    -------
    pathlib.Path or None
        The sidecar written, or None when the table has no arrays.
    """
    sidecar = stats_sidecar(path)
    replicates = {r: a.replicates for r, a in arrays.items() if a.replicates is not None}
    nulls = {r: a.null_values for r, a in arrays.items() if a.null_values is not None}
    if not replicates and not nulls:
        sidecar.unlink(missing_ok=True)  # an earlier save's arrays would otherwise attach to this table
        return None
    content = {"format": np.array(SIDECAR_FORMAT, dtype=np.int64)}
    content.update(_packed(frame, replicates, "replicate"))
    content["replicate_kinds"] = np.array([arrays[r].replicate_kind for r in sorted(replicates)], dtype=str)
    content.update(_packed(frame, nulls, "null"))
    with sidecar.open("wb") as handle:
        np.savez_compressed(handle, **content)  # type: ignore[arg-type]
    return sidecar


def _unpacked(content: Mapping[str, np.ndarray], prefix: str) -> list[tuple[tuple[Any, ...], np.ndarray]]:
    """(pair key, values) of every row stored under one prefix."""
    keys = [content[f"{prefix}_key_{k}"] for k in KEY_COLUMNS]
    offsets = content[f"{prefix}_offsets"]
    values = content[f"{prefix}_values"]
    if len(offsets) != len(keys[0]) + 1 or offsets[-1] != len(values) or (np.diff(offsets) <= 0).any():
        raise ValueError(f"its {prefix} offsets do not match its values")
    return [((str(keys[0][i]), str(keys[1][i]), int(keys[2][i]), str(keys[3][i]), int(keys[4][i])),
             values[offsets[i]:offsets[i + 1]]) for i in range(len(keys[0]))]


def _row_lookup(frame: pd.DataFrame) -> dict[tuple[Any, ...], int]:
    """Pair key -> row position of a validated frame."""
    columns = [frame[c].tolist() for c in KEY_COLUMNS]
    return {(str(m), str(ma), int(la), str(mb), int(lb)): i
            for i, (m, ma, la, mb, lb) in enumerate(zip(*columns, strict=True))}


def read_stats_sidecar(frame: pd.DataFrame, path: str | Path, expected: bool) -> dict[int, RowArrays]:
    """Read the arrays of a results file's sidecar and attach them to the rows of its (validated) frame.

    Parameters
    ----------
    frame
        The file's validated rows.
    path
        The results file.
    expected
        Whether the file says it had arrays; a missing sidecar then warns.

    Returns
    -------
    dict of int to RowArrays
        Row position -> its arrays; empty without a sidecar.

    Raises
    ------
    ValueError
        If the sidecar is not a readable statistics file of this layout (naming it).

    Warns
    -----
    StaleStatsWarning
        When the sidecar is missing but expected, or names pairs the table does not have (those are dropped).
    """
    sidecar = stats_sidecar(path)
    if not sidecar.is_file():
        if expected:
            warnings.warn(f"results file {str(path)!r} had replicate or null arrays but {str(sidecar)!r} is "
                          "missing; loading without them (paired differences and model-level intervals need them)",
                          StaleStatsWarning, stacklevel=3)
        return {}
    try:
        with np.load(sidecar, allow_pickle=False) as npz:
            content = {k: npz[k] for k in npz.files}
        if int(content["format"]) != SIDECAR_FORMAT:
            raise ValueError(f"layout {int(content['format'])} is not {SIDECAR_FORMAT}")
        replicates = _unpacked(content, "replicate")
        kinds = [str(k) for k in content["replicate_kinds"]]
        nulls = _unpacked(content, "null")
        if len(kinds) != len(replicates) or any(k not in REPLICATE_KINDS for k in kinds):
            raise ValueError("its replicate kinds do not match its replicates")
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"statistics sidecar {str(sidecar)!r} is not readable: {exc}") from exc
    lookup = _row_lookup(frame)
    found: dict[int, dict[str, Any]] = {}
    unknown = 0
    for (key, values), kind in zip(replicates, kinds, strict=True):
        if key in lookup:
            found.setdefault(lookup[key], {}).update(replicates=values, replicate_kind=kind)
        else:
            unknown += 1
    for key, values in nulls:
        if key in lookup:
            found.setdefault(lookup[key], {})["null_values"] = values
        else:
            unknown += 1
    if unknown:
        warnings.warn(f"statistics sidecar {str(sidecar)!r} has arrays of {unknown} pair(s) that {str(path)!r} does "
                      "not hold (edited or from another table); they are dropped", StaleStatsWarning, stacklevel=3)
    return {row: row_arrays(record, f"row {row}") for row, record in found.items()}
