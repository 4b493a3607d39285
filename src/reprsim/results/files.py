"""Results tables on disk: Parquet with the provenance in the schema metadata, or CSV with a JSON sidecar."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .schema import STAT_COLUMNS, STRING_COLUMNS

FORMATS: tuple[str, ...] = ("parquet", "csv")
FORMAT_OF_SUFFIX: dict[str, str] = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}

# Key under which the provenance JSON travels in the Parquet schema metadata.
PROVENANCE_KEY = b"reprsim.provenance"
# Key under which a Parquet file records how many of its rows have arrays in the statistics sidecar.
STAT_ARRAYS_KEY = b"reprsim.stat_arrays"


def check_output_path(path: str | Path, format: str | None = None) -> str:
    """The format a table would be saved to `path` in, checked before any work is done.

    Parameters
    ----------
    path
        Where the table will be written.
    format
        ``"parquet"`` or ``"csv"``; default: from the suffix (``.parquet``, ``.pq``, ``.csv``).

    Returns
    -------
    str
        The format.

    Raises
    ------
    ValueError
        If the format is unknown or cannot be told from the suffix, the path is a folder, or a file stands
        where one of its folders should be.
    """
    path = Path(path)
    fmt = _resolve_format(path, format)
    if path.is_dir():
        raise ValueError(f"results file {str(path)!r} is a folder")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"cannot write {str(path)!r}: {str(parent)!r} is a file, not a folder")
            break
    return fmt


def _resolve_format(path: Path, format: str | None) -> str:
    """The file format from the explicit argument, else from the suffix (ValueError when neither tells)."""
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"unknown results format {format!r}; use one of {list(FORMATS)}")
        return format
    suffix = path.suffix.lower()
    if suffix in FORMAT_OF_SUFFIX:
        return FORMAT_OF_SUFFIX[suffix]
    raise ValueError(
        f"cannot tell the format of {str(path)!r} from its suffix {suffix!r}; "
        f"use .parquet or .csv, or pass format= one of {list(FORMATS)}"
    )


def provenance_sidecar(path: str | Path) -> Path:
    """Where a CSV results table keeps its provenance.

    Parameters
    ----------
    path
        The CSV file.

    Returns
    -------
    pathlib.Path
        ``<file>.provenance.json`` beside it.
    """
    path = Path(path)
    return path.with_name(path.name + ".provenance.json")


def write_table(frame: pd.DataFrame, provenance: Mapping[str, Any], path: str | Path,
                format: str | None = None, stat_arrays: int = 0) -> Path:
    """Write a validated frame and its provenance.

    Parquet keeps the provenance JSON in the schema metadata (under `PROVENANCE_KEY`); CSV in a sidecar
    (`provenance_sidecar`).

    Parameters
    ----------
    frame
        The table's rows.
    provenance
        JSON-serialisable provenance.
    path
        The file; its folders are created.
    format
        ``"parquet"`` or ``"csv"``; default: from the suffix.
    stat_arrays
        How many rows have arrays in the statistics sidecar (recorded in a Parquet file's metadata, so that
        a lost sidecar is noticed).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        If the format is unknown or cannot be told from the suffix.
    """
    path = Path(path)
    fmt = _resolve_format(path, format)
    path.parent.mkdir(parents=True, exist_ok=True)
    provenance_json = json.dumps(dict(provenance), sort_keys=True)
    if fmt == "parquet":
        arrow = pa.Table.from_pandas(frame, preserve_index=False)
        metadata = dict(arrow.schema.metadata or {})
        metadata[PROVENANCE_KEY] = provenance_json.encode("utf-8")
        if stat_arrays:
            metadata[STAT_ARRAYS_KEY] = str(int(stat_arrays)).encode("ascii")
        pq.write_table(arrow.replace_schema_metadata(metadata), path)
    else:
        frame.to_csv(path, index=False)
        provenance_sidecar(path).write_text(provenance_json + "\n", encoding="utf-8")
    return path


def read_table(path: str | Path, format: str | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read the rows and provenance of a results file (a CSV without its sidecar has empty provenance).

    Parameters
    ----------
    path
        The file.
    format
        ``"parquet"`` or ``"csv"``; default: from the suffix.

    Returns
    -------
    tuple of (pandas.DataFrame, dict)
        The rows (not validated yet) and the provenance.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the path is a folder, the format is unknown, the file cannot be read in its format, or its
        provenance is not a JSON object.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"results table {str(path)!r} is a folder, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"results table {str(path)!r} does not exist")
    fmt = _resolve_format(path, format)
    provenance: dict[str, Any] = {}
    if fmt == "parquet":
        try:
            arrow = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise ValueError(f"results table {str(path)!r} is not a readable Parquet file: {exc}") from exc
        raw = (arrow.schema.metadata or {}).get(PROVENANCE_KEY)
        if raw is not None:
            provenance = _load_provenance_json(raw.decode("utf-8"), str(path))
        return arrow.to_pandas(), provenance
    try:
        # Statistics are read as text and parsed here, so that a bad entry is reported by row by the schema.
        dtypes: dict[str, Any] = {c: str for c in (*STRING_COLUMNS, *STAT_COLUMNS)}
        frame = pd.read_csv(path, dtype=dtypes, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"results table {str(path)!r} is not a readable CSV file: {exc}") from exc
    for column in STAT_COLUMNS:
        if column in frame.columns:
            # Built as a list: Series.map would turn the None of an empty entry into NaN.
            frame[column] = pd.Series([_parse_stat(v) for v in frame[column]], index=frame.index, dtype=object)
    sidecar = provenance_sidecar(path)
    if sidecar.is_file():
        provenance = _load_provenance_json(sidecar.read_text(encoding="utf-8"), str(sidecar))
    return frame, provenance


def _parse_stat(text: Any) -> Any:
    """A CSV statistic: empty is missing (None), a number is a float, anything else stays text for the schema."""
    if not isinstance(text, str):
        return text
    if text.strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def stats_flag(path: str | Path, format: str | None = None) -> bool:
    """Whether a results file says it had arrays in a statistics sidecar (Parquet metadata; CSV never says).

    Parameters
    ----------
    path
        A readable results file.
    format
        ``"parquet"`` or ``"csv"``; default: from the suffix.

    Returns
    -------
    bool
        True when a Parquet file records rows with arrays.
    """
    if _resolve_format(Path(path), format) != "parquet":
        return False
    metadata = pq.read_schema(path).metadata or {}
    return bool(metadata.get(STAT_ARRAYS_KEY))


def _load_provenance_json(text: str, where: str) -> dict[str, Any]:
    """Parse stored provenance, which must be a JSON object (ValueError naming where it came from)."""
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"provenance in {where!r} is not valid JSON: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ValueError(f"provenance in {where!r} must be a JSON object, got {type(loaded).__name__}")
    return loaded
