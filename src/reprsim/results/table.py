"""`ResultTable`: a validated results table with its provenance, and the queries the analysis and report use.

A representation is identified by a ``LayerId(model, layer)`` tuple - never by a string that has to be
parsed back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprsim.layers import LayerId

from .files import read_table, write_table
from .schema import COLUMNS, LEVELS, SYMMETRIC, check_provenance, validate_frame


@dataclass(frozen=True)
class LayerMatrix:
    """A square layer-by-layer matrix of one measure: ``values[i, j] = sim(labels[i] -> labels[j])``.

    Rows and columns share ``labels``, ordered model by model (in the order asked for) and layer by layer.
    For symmetric measures the matrix is symmetric; for directed ones row i is the "from" side.

    Parameters
    ----------
    measure
        The measure's name.
    level
        ``"representation"`` or ``"attention"``.
    symmetric
        Whether the measure is symmetric.
    labels
        The representation of each row (and column).
    values
        The len(labels) x len(labels) matrix (read-only).
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
        """Row/column range of one model's layers (they are contiguous by construction).

        Parameters
        ----------
        model
            A model of the matrix.

        Returns
        -------
        slice
            The rows (and columns) of its layers.

        Raises
        ------
        KeyError
            If the model is not in the matrix (listing those that are).
        """
        rows = [i for i, label in enumerate(self.labels) if label.model == model]
        if not rows:
            raise KeyError(f"model {model!r} is not in this matrix; it has {self.models}")
        return slice(rows[0], rows[-1] + 1)

    def block(self, model_a: str, model_b: str) -> np.ndarray:
        """The sub-matrix of one model's layers against another's.

        Parameters
        ----------
        model_a
            The rows' model ("from" side for a directed measure).
        model_b
            The columns' model.

        Returns
        -------
        numpy.ndarray
            layers(model_a) x layers(model_b), a view of `values`.

        Raises
        ------
        KeyError
            If a model is not in the matrix.
        """
        return self.values[self.model_slice(model_a), self.model_slice(model_b)]


class ResultTable:
    """A validated results table plus its provenance (store path, corpus hash, versions, options).

    The table is read-only: `frame` hands out a copy, and every method derives from the stored rows.
    Representations are named by `LayerId`; a symmetric measure's pair is stored once and read in either
    order, a directed measure's in both orders.

    Parameters
    ----------
    frame
        One row per (representation a, representation b, measure, direction), with the schema's `COLUMNS`
        (checked by `validate_frame`).
    provenance
        JSON-serialisable provenance (default: none).

    Raises
    ------
    ValueError
        If a row breaks the schema (naming the row) or the provenance is not JSON-serialisable.
    """

    def __init__(self, frame: pd.DataFrame, provenance: Mapping[str, Any] | None = None) -> None:
        self._frame = validate_frame(frame)
        self._provenance = check_provenance(provenance)
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
        """Build a table from row dicts with the schema's keys (handy for engines and tests).

        Parameters
        ----------
        records
            One mapping per row, keyed by the `COLUMNS`; none gives an empty table.
        provenance
            JSON-serialisable provenance.

        Returns
        -------
        ResultTable
            The validated table.

        Raises
        ------
        ValueError
            If a record breaks the schema (naming the row) or the provenance is not JSON-serialisable.
        """
        rows = list(records)
        frame = pd.DataFrame(rows, columns=list(COLUMNS)) if not rows else pd.DataFrame(rows)
        return cls(frame, provenance)

    @classmethod
    def concat(
        cls, tables: Sequence[ResultTable], provenance: Mapping[str, Any] | None = None
    ) -> ResultTable:
        """Stack tables (e.g. runs over different model sets).

        Parameters
        ----------
        tables
            The tables, in order.
        provenance
            The stacked table's provenance. Without it, identical provenances are kept as they are and
            differing ones are kept side by side under ``{"parts": [...]}`` so nothing is lost.

        Returns
        -------
        ResultTable
            Every row of every table.

        Raises
        ------
        ValueError
            If there are no tables, one is not a `ResultTable`, two tables hold the same pair of a measure,
            or a measure is symmetric (or at a level) in one table and not in another.
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
        """Write Parquet (provenance in the schema metadata) or CSV (provenance in a JSON sidecar).

        Parameters
        ----------
        path
            The file; its folders are created.
        format
            ``"parquet"`` or ``"csv"``; default: from the suffix (``.parquet``, ``.pq``, ``.csv``).

        Returns
        -------
        pathlib.Path
            The path written.

        Raises
        ------
        ValueError
            If the format is unknown or cannot be told from the suffix.
        """
        return write_table(self._frame, self._provenance, path, format)

    @classmethod
    def load(cls, path: str | Path, format: str | None = None) -> ResultTable:
        """Read a table written by `save` (or any file with the schema's columns).

        A CSV without its sidecar loads with empty provenance.

        Parameters
        ----------
        path
            The file.
        format
            ``"parquet"`` or ``"csv"``; default: from the suffix.

        Returns
        -------
        ResultTable
            The validated table.

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        ValueError
            If it is a folder, unreadable, or its rows break the schema (naming the file and the row).
        """
        frame, provenance = read_table(path, format)
        try:
            return cls(frame, provenance)
        except ValueError as exc:
            raise ValueError(f"{str(Path(path))!r}: {exc}") from exc

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
        """Measure names in order of first appearance.

        Parameters
        ----------
        level
            Only the measures of this level (``"representation"`` or ``"attention"``); default: all.

        Returns
        -------
        list of str
            The measures.

        Raises
        ------
        ValueError
            If the level is unknown.
        """
        if level is not None and level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; use one of {list(LEVELS)}")
        return [m for m, (lv, _) in self._measure_kind.items() if level is None or lv == level]

    def models(self) -> list[str]:
        """Model names in order of first appearance (row by row, model_a before model_b).

        Returns
        -------
        list of str
            Each model once.
        """
        return list(self._models)

    def layers(self, model: str, measure: str | None = None) -> list[int]:
        """The layers of a model that appear on either side of any pair.

        Parameters
        ----------
        model
            A model of the table.
        measure
            Only the layers this measure covers (attention measures have no layer 0, for instance); default:
            the layers of every measure.

        Returns
        -------
        list of int
            Sorted layer indices (empty when the measure does not cover the model).

        Raises
        ------
        KeyError
            If the model or the measure is not in the table (listing those that are).
        """
        if model not in self._layers:
            raise KeyError(f"model {model!r} is not in the results table; it has {self.models()}")
        if measure is None:
            return list(self._layers[model])
        self._kind(measure)
        return list(self._measure_layers[measure].get(model, []))

    def layer_ids(self, models: Sequence[str] | None = None, measure: str | None = None) -> list[LayerId]:
        """All representations of the given models, model by model and layer by layer.

        Parameters
        ----------
        models
            Models of the table, in the order wanted (default: every model, in table order).
        measure
            Only the layers this measure covers; default: every layer.

        Returns
        -------
        list of LayerId
            The representations.

        Raises
        ------
        KeyError
            If a model or the measure is not in the table.
        ValueError
            If `models` is a string rather than a list, or lists a model twice.
        """
        chosen = self._check_models(models)
        return [LayerId(m, layer) for m in chosen for layer in self.layers(m, measure)]

    def level(self, measure: str) -> str:
        """The level of a measure.

        Parameters
        ----------
        measure
            A measure of the table.

        Returns
        -------
        str
            ``"representation"`` or ``"attention"``.

        Raises
        ------
        KeyError
            If the measure is not in the table (listing those that are).
        """
        return self._kind(measure)[0]

    def is_symmetric(self, measure: str) -> bool:
        """Whether the measure's rows are stored once per unordered pair (direction ``"sym"``).

        Parameters
        ----------
        measure
            A measure of the table.

        Returns
        -------
        bool
            True for a symmetric measure, False for a directed one (``"a->b"``).

        Raises
        ------
        KeyError
            If the measure is not in the table.
        """
        return self._kind(measure)[1] == SYMMETRIC

    def value(self, measure: str, a: LayerId | tuple[str, int], b: LayerId | tuple[str, int]) -> float:
        """The value sim(a -> b) of one pair.

        Parameters
        ----------
        measure
            A measure of the table.
        a, b
            The two representations, as `LayerId` or ``(model, layer)`` tuples (either order for a symmetric
            measure).

        Returns
        -------
        float
            The value.

        Raises
        ------
        KeyError
            If the measure, a model or a layer is not in the table, or the pair was not computed (naming it).
        """
        return float(self.values(measure, [LayerId(*a)], [LayerId(*b)])[0, 0])

    def values(self, measure: str, rows: Sequence[LayerId], columns: Sequence[LayerId]) -> np.ndarray:
        """The values of every pair of some representations with some others.

        Parameters
        ----------
        measure
            A measure of the table.
        rows
            The "from" representations.
        columns
            The "to" representations.

        Returns
        -------
        numpy.ndarray
            ``out[i, j] = sim(rows[i] -> columns[j])``, len(rows) x len(columns), float64.

        Raises
        ------
        KeyError
            If the measure, a model or a layer is not in the table, or a pair was not computed (naming the
            first one missing and how many are).
        """
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
        """The values of one model's layers against another's, over the layers the measure covers.

        Parameters
        ----------
        measure
            A measure of the table.
        model_a
            The "from" model.
        model_b
            The "to" model.

        Returns
        -------
        numpy.ndarray
            layers(model_a) x layers(model_b): sim(layer of a -> layer of b).

        Raises
        ------
        KeyError
            If the measure or a model is not in the table, or a pair was not computed.
        """
        rows = self.layer_ids([model_a], measure)
        columns = self.layer_ids([model_b], measure)
        return self.values(measure, rows, columns)

    def matrix(self, measure: str, models: Sequence[str] | None = None) -> LayerMatrix:
        """All layers of some models that a measure covers, against each other.

        Parameters
        ----------
        measure
            A measure of the table.
        models
            The models, in the order wanted (default: every model, in table order).

        Returns
        -------
        LayerMatrix
            The square matrix, labelled model by model and layer by layer.

        Raises
        ------
        KeyError
            If the measure or a model is not in the table, or a pair was not computed.
        ValueError
            If `models` is a string rather than a list, or lists a model twice.
        """
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
        """The models asked for (default: all), checked to be in the table, each once."""
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
