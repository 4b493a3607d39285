"""The results table: one row per (representation a, representation b, measure, direction).

The table is the hand-over point between the all-pairs engine and everything downstream (aggregation,
clustering, figures). Its schema is fixed (docs/design/contracts.md) and checked on construction, so a
broken table fails where it is made, with the offending row named, instead of as a NaN in a figure.

A representation is identified by a ``LayerId(model, layer)`` tuple - never by a string that has to be
parsed back. Symmetric measures store each unordered pair once (direction "sym"); directed measures store
both orders (direction "a->b", value = sim(a -> b)).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reprsim.layers import LayerId

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
FORMATS: tuple[str, ...] = ("parquet", "csv")
FORMAT_OF_SUFFIX: dict[str, str] = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}

# Key under which the provenance JSON travels in the Parquet schema metadata.
PROVENANCE_KEY = b"reprsim.provenance"
_STRING_COLUMNS = ("model_a", "model_b", "measure", "direction", "level")


@dataclass(frozen=True)
class LayerMatrix:
    """A square layer-by-layer matrix of one measure: ``values[i, j] = sim(labels[i] -> labels[j])``.

    Rows and columns share ``labels``, ordered model by model (in the order asked for) and layer by layer.
    For symmetric measures the matrix is symmetric; for directed ones row i is the "from" side.
    """

    measure: str
    level: str
    symmetric: bool
    labels: tuple[LayerId, ...]
    values: np.ndarray

    @property
    def models(self) -> list[str]:
        """Models in row order, each once."""
        return list(dict.fromkeys(label.model for label in self.labels))

    def model_slice(self, model: str) -> slice:
        """Row/column range of one model's layers (they are contiguous by construction)."""
        rows = [i for i, label in enumerate(self.labels) if label.model == model]
        if not rows:
            raise KeyError(f"model {model!r} is not in this matrix; it has {self.models}")
        return slice(rows[0], rows[-1] + 1)

    def block(self, model_a: str, model_b: str) -> np.ndarray:
        """The layers(model_a) x layers(model_b) sub-matrix."""
        return self.values[self.model_slice(model_a), self.model_slice(model_b)]


def _describe_row(frame: pd.DataFrame, index: Any) -> str:
    """Name a row by its position and its pair, for error messages."""
    row = frame.loc[index]
    parts = [f"{col}={row[col]!r}" for col in ("model_a", "layer_a", "model_b", "layer_b", "measure")]
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
            f"results table {_describe_row(frame, where)}: {column} must be an integer >= {minimum}, "
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
            f"results table {_describe_row(frame, where)}: {column} must be True or False, "
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
            f"results table {_describe_row(frame, where)}: {column} must be a non-empty string, "
            f"got {series.loc[where]!r}"
        )
    if allowed is not None:
        bad = ~series.isin(list(allowed))
        if bad.any():
            where = _first_bad(frame, bad)
            raise ValueError(
                f"results table {_describe_row(frame, where)}: {column} must be one of {list(allowed)}, "
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
        raise ValueError(f"results table {_describe_row(frame, where)} duplicates an earlier row's pair")


def validate_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a normalised copy of `frame` with the contract's dtypes, or raise ValueError naming the row.

    Columns beyond the fixed schema are kept as they are (after the schema columns).
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
    extra = [c for c in frame.columns if c not in COLUMNS]
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
            f"results table {_describe_row(frame, where)}: value must be a finite number, "
            f"got {frame['value'].loc[where]!r}"
        )
    out["value"] = values
    out["level"] = _as_string_column(frame, "level", LEVELS)
    out["n_rows"] = _as_int_column(frame, "n_rows", 1)
    out["subsample"] = _as_bool_column(frame, "subsample")
    for column in extra:
        out[column] = frame[column]
    _check_one_per_measure(out, "direction")
    _check_one_per_measure(out, "level")
    _check_unique_pairs(out)
    return out


def _check_provenance(provenance: Mapping[str, Any] | None) -> dict[str, Any]:
    """Provenance must survive a JSON round trip, since that is how it is stored."""
    if provenance is None:
        return {}
    if not isinstance(provenance, Mapping):
        raise ValueError(f"provenance must be a mapping, got {type(provenance).__name__}")
    try:
        return dict(json.loads(json.dumps(dict(provenance), allow_nan=False)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"provenance must be JSON-serialisable: {exc}") from exc


def check_output_path(path: str | Path, format: str | None = None) -> str:
    """The format a table would be saved to `path` in, checked before any work is done: a known format, the
    path not a folder, and no file where one of its folders should be."""
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
    """Pick the file format from the explicit argument, else from the suffix."""
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
    """Where a CSV results table keeps its provenance: ``<file>.provenance.json`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".provenance.json")


class ResultTable:
    """A validated results table plus its provenance (store path, corpus hash, versions, options).

    The table is read-only: `frame` hands out a copy, and every method derives from the stored rows.
    """

    def __init__(self, frame: pd.DataFrame, provenance: Mapping[str, Any] | None = None) -> None:
        self._frame = validate_frame(frame)
        self._provenance = _check_provenance(provenance)
        self._models, self._layers = _models_and_layers(self._frame)
        self._position = {
            LayerId(model, layer): i
            for i, (model, layer) in enumerate((m, layer) for m in self._models for layer in self._layers[m])
        }
        kinds = self._frame.groupby("measure", sort=False)[["level", "direction"]].first()
        self._measure_kind: dict[str, tuple[str, str]] = {
            str(m): (str(level), str(direction)) for m, (level, direction) in kinds.iterrows()
        }
        self._dense: dict[str, np.ndarray] = {}
        # Layers each measure covers: attention measures have no layer 0 (embeddings carry no attention).
        self._measure_layers: dict[str, dict[str, list[int]]] = {}
        for measure, rows in self._frame.groupby("measure", sort=False):
            sides = pd.concat([rows[["model_a", "layer_a"]].set_axis(["model", "layer"], axis=1),
                               rows[["model_b", "layer_b"]].set_axis(["model", "layer"], axis=1)])
            self._measure_layers[str(measure)] = {
                str(m): sorted(int(v) for v in set(g.layer)) for m, g in sides.groupby("model", sort=False)
            }

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_records(
        cls, records: Iterable[Mapping[str, Any]], provenance: Mapping[str, Any] | None = None
    ) -> ResultTable:
        """Build a table from row dicts with the schema's keys (handy for engines and tests)."""
        rows = list(records)
        frame = pd.DataFrame(rows, columns=list(COLUMNS)) if not rows else pd.DataFrame(rows)
        return cls(frame, provenance)

    @classmethod
    def concat(
        cls, tables: Sequence[ResultTable], provenance: Mapping[str, Any] | None = None
    ) -> ResultTable:
        """Stack tables (e.g. runs over different model sets). Overlapping pairs are an error.

        Without an explicit `provenance`, identical provenances are kept as they are and differing ones
        are kept side by side under ``{"parts": [...]}`` so nothing is lost.
        """
        if not tables:
            raise ValueError("concat needs at least one results table")
        for table in tables:
            if not isinstance(table, ResultTable):
                raise ValueError(f"concat takes ResultTable objects, got {type(table).__name__}")
        if provenance is None:
            first = tables[0].provenance
            same = all(t.provenance == first for t in tables)
            provenance = first if same else {"parts": [t.provenance for t in tables]}
        frame = pd.concat([t._frame for t in tables], ignore_index=True)
        return cls(frame, provenance)

    # -- persistence --------------------------------------------------------------------------------
    def save(self, path: str | Path, format: str | None = None) -> Path:
        """Write Parquet (provenance in the schema metadata) or CSV (provenance in a JSON sidecar)."""
        path = Path(path)
        fmt = _resolve_format(path, format)
        path.parent.mkdir(parents=True, exist_ok=True)
        provenance_json = json.dumps(self._provenance, sort_keys=True)
        if fmt == "parquet":
            arrow = pa.Table.from_pandas(self._frame, preserve_index=False)
            metadata = dict(arrow.schema.metadata or {})
            metadata[PROVENANCE_KEY] = provenance_json.encode("utf-8")
            pq.write_table(arrow.replace_schema_metadata(metadata), path)
        else:
            self._frame.to_csv(path, index=False)
            provenance_sidecar(path).write_text(provenance_json + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path, format: str | None = None) -> ResultTable:
        """Read a table written by `save` (or any file with the schema's columns).

        A CSV without its sidecar loads with empty provenance.
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
                raise ValueError(
                    f"results table {str(path)!r} is not a readable Parquet file: {exc}"
                ) from exc
            raw = (arrow.schema.metadata or {}).get(PROVENANCE_KEY)
            if raw is not None:
                provenance = _load_provenance_json(raw.decode("utf-8"), str(path))
            frame = arrow.to_pandas()
        else:
            try:
                frame = pd.read_csv(path, dtype={c: str for c in _STRING_COLUMNS}, keep_default_na=False)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
                raise ValueError(f"results table {str(path)!r} is not a readable CSV file: {exc}") from exc
            sidecar = provenance_sidecar(path)
            if sidecar.is_file():
                provenance = _load_provenance_json(sidecar.read_text(encoding="utf-8"), str(sidecar))
        try:
            return cls(frame, provenance)
        except ValueError as exc:
            raise ValueError(f"{str(path)!r}: {exc}") from exc

    # -- views ----------------------------------------------------------------------------------------
    @property
    def frame(self) -> pd.DataFrame:
        """A copy of the rows (the table itself stays valid whatever the caller does with it)."""
        return self._frame.copy()

    @property
    def provenance(self) -> dict[str, Any]:
        """A copy of the provenance dict."""
        return json.loads(json.dumps(self._provenance))

    def __len__(self) -> int:
        return len(self._frame)

    def __repr__(self) -> str:
        return f"ResultTable({len(self)} rows, models={self.models()}, measures={self.measures()})"

    def measures(self, level: str | None = None) -> list[str]:
        """Measure names in order of first appearance, optionally only those of one level."""
        if level is not None and level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; use one of {list(LEVELS)}")
        return [m for m, (lv, _) in self._measure_kind.items() if level is None or lv == level]

    def models(self) -> list[str]:
        """Model names in order of first appearance (row by row, model_a before model_b)."""
        return list(self._models)

    def layers(self, model: str, measure: str | None = None) -> list[int]:
        """Sorted layer indices that appear for `model` on either side of any pair (of `measure`, if given)."""
        if model not in self._layers:
            raise KeyError(f"model {model!r} is not in the results table; it has {self.models()}")
        if measure is None:
            return list(self._layers[model])
        self._kind(measure)
        return list(self._measure_layers[measure].get(model, []))

    def layer_ids(self, models: Sequence[str] | None = None, measure: str | None = None) -> list[LayerId]:
        """All representations of the given models (default: every model), model by model; with `measure`,
        only the layers that measure covers."""
        chosen = self._check_models(models)
        return [LayerId(m, layer) for m in chosen for layer in self.layers(m, measure)]

    def level(self, measure: str) -> str:
        """The level ("representation" or "attention") of a measure."""
        return self._kind(measure)[0]

    def is_symmetric(self, measure: str) -> bool:
        """Whether the measure's rows are stored once per unordered pair ("sym")."""
        return self._kind(measure)[1] == SYMMETRIC

    def value(self, measure: str, a: LayerId | tuple[str, int], b: LayerId | tuple[str, int]) -> float:
        """sim(a -> b) of one pair; KeyError naming the pair when it was not computed."""
        return float(self.values(measure, [LayerId(*a)], [LayerId(*b)])[0, 0])

    def values(self, measure: str, rows: Sequence[LayerId], columns: Sequence[LayerId]) -> np.ndarray:
        """``out[i, j] = sim(rows[i] -> columns[j])``; KeyError naming the first pair that is missing."""
        dense = self._dense_matrix(measure)
        row_pos = self._positions(rows)
        col_pos = self._positions(columns)
        found = dense[np.ix_(row_pos, col_pos)]
        missing = np.argwhere(np.isnan(found))
        if missing.size:
            a, b = LayerId(*rows[missing[0][0]]), LayerId(*columns[missing[0][1]])
            raise KeyError(
                f"measure {measure!r} has no value for ({a.model}, layer {a.layer}) -> "
                f"({b.model}, layer {b.layer}) ({len(missing)} of {found.size} requested pairs missing)"
            )
        return found

    def pair_matrix(self, measure: str, model_a: str, model_b: str) -> np.ndarray:
        """layers(model_a) x layers(model_b) array of sim(layer of a -> layer of b) (the measure's layers)."""
        rows = self.layer_ids([model_a], measure)
        columns = self.layer_ids([model_b], measure)
        return self.values(measure, rows, columns)

    def matrix(self, measure: str, models: Sequence[str] | None = None) -> LayerMatrix:
        """All layers of `models` (default: all, in table order) that `measure` covers, against each other."""
        labels = self.layer_ids(models, measure)
        return LayerMatrix(
            measure=measure,
            level=self.level(measure),
            symmetric=self.is_symmetric(measure),
            labels=tuple(labels),
            values=self.values(measure, labels, labels),
        )

    # -- internals --------------------------------------------------------------------------------------
    def _check_models(self, models: Sequence[str] | None) -> list[str]:
        known = self.models()
        if models is None:
            return known
        if isinstance(models, str):
            raise ValueError(f"models must be a list of model names, got the string {models!r}")
        unknown = [m for m in models if m not in known]
        if unknown:
            raise KeyError(f"models {unknown} are not in the results table; it has {known}")
        if len(set(models)) != len(models):
            raise ValueError(f"models lists a model twice: {list(models)}")
        return list(models)

    def _kind(self, measure: str) -> tuple[str, str]:
        """(level, direction) of a measure; KeyError naming the known measures."""
        if measure not in self._measure_kind:
            raise KeyError(f"measure {measure!r} is not in the results table; it has {self.measures()}")
        return self._measure_kind[measure]

    def _positions(self, layers: Sequence[LayerId]) -> np.ndarray:
        """Row/column positions of representations in the dense per-measure matrices."""
        out = np.empty(len(layers), dtype=np.intp)
        for i, label in enumerate(layers):
            key = LayerId(str(label[0]), int(label[1]))
            if key not in self._position:
                if key.model not in self._layers:
                    raise KeyError(f"model {key.model!r} is not in the results table; it has {self.models()}")
                raise KeyError(
                    f"model {key.model!r} has no layer {key.layer} in the results table; "
                    f"it has layers {self._layers[key.model]}"
                )
            out[i] = self._position[key]
        return out

    def _dense_matrix(self, measure: str) -> np.ndarray:
        """All representations x all representations for one measure; NaN marks pairs not computed.

        Internal only: every public accessor turns a NaN it meets into a KeyError naming the pair.
        Symmetric rows are written in both orders.
        """
        cached = self._dense.get(measure)
        if cached is not None:
            return cached
        self._kind(measure)
        rows = self._frame[self._frame["measure"] == measure]
        index = pd.MultiIndex.from_tuples(list(self._position), names=["model", "layer"])
        pos_a = index.get_indexer(pd.MultiIndex.from_arrays([rows["model_a"], rows["layer_a"]]))
        pos_b = index.get_indexer(pd.MultiIndex.from_arrays([rows["model_b"], rows["layer_b"]]))
        dense = np.full((len(index), len(index)), np.nan)
        values = rows["value"].to_numpy(dtype=np.float64)
        dense[pos_a, pos_b] = values
        if self.is_symmetric(measure):
            dense[pos_b, pos_a] = values
        dense.setflags(write=False)
        self._dense[measure] = dense
        return dense


def _models_and_layers(frame: pd.DataFrame) -> tuple[list[str], dict[str, list[int]]]:
    """Models in order of first appearance (row by row, model_a before model_b) and each one's layers."""
    interleaved = np.column_stack([frame["model_a"].to_numpy(), frame["model_b"].to_numpy()]).ravel()
    models = list(dict.fromkeys(interleaved.tolist()))
    sides = pd.concat(
        [
            frame[["model_a", "layer_a"]].set_axis(["model", "layer"], axis=1),
            frame[["model_b", "layer_b"]].set_axis(["model", "layer"], axis=1),
        ],
        ignore_index=True,
    ).drop_duplicates()
    grouped = sides.groupby("model", sort=False)["layer"]
    layers = {str(model): sorted(int(x) for x in group) for model, group in grouped}
    return models, layers


def _load_provenance_json(text: str, where: str) -> dict[str, Any]:
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"provenance in {where!r} is not valid JSON: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ValueError(f"provenance in {where!r} must be a JSON object, got {type(loaded).__name__}")
    return loaded
