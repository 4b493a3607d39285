"""`ResultTable`: a validated results table with its provenance, and the queries the analysis and report use.

A representation is identified by a ``LayerId(model, layer)`` tuple - never by a string that has to be
parsed back. The layer-by-layer matrices (`LayerMatrix`) and the dense per-measure matrices the pair
queries read live in `reprsim.results.matrix`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprsim.layers import LayerId

from . import arrays as row_stats
from .arrays import RowArrays
from .files import read_table, stats_flag, write_table
from .matrix import LayerIndex, LayerMatrix
from .schema import LEVELS, SYMMETRIC, check_provenance, describe_row, validate_frame
from .stat_queries import StatQueries

__all__ = ["LayerMatrix", "ResultTable"]


class ResultTable(StatQueries):
    """A validated results table plus its provenance (store path, corpus hash, versions, options).

    The table is read-only: `frame` hands out a copy, and every method derives from the stored rows.
    Representations are named by `LayerId`; a symmetric measure's pair is stored once and read in either
    order, a directed measure's in both orders. A table may carry statistics: the nullable columns
    `reprsim.inference.STAT_COLUMNS` in its frame, and per-row replicate and null arrays beside it (read with
    `uncertainty`; see `reprsim.results.arrays`).

    Parameters
    ----------
    frame
        One row per (representation a, representation b, measure, direction), with the schema's `COLUMNS`
        (checked by `validate_frame`).
    provenance
        JSON-serialisable provenance (default: none).
    arrays
        Row position in `frame` -> its replicate and null arrays (default: none).

    Raises
    ------
    ValueError
        If a row breaks the schema (naming the row), the provenance is not JSON-serialisable, or `arrays`
        names a row the frame does not have.
    """

    def __init__(self, frame: pd.DataFrame, provenance: Mapping[str, Any] | None = None,
                 arrays: Mapping[int, RowArrays] | None = None) -> None:
        self._frame = validate_frame(frame)
        self._provenance = check_provenance(provenance)
        self._arrays: dict[int, RowArrays] = {}
        for row, found in (arrays or {}).items():
            if not isinstance(row, (int, np.integer)) or not 0 <= row < len(self._frame):
                raise ValueError(f"arrays name row {row!r}, but the results table has rows 0 to {len(self._frame) - 1}")
            if not isinstance(found, RowArrays):
                raise ValueError(f"arrays of row {row} must be a RowArrays, got {type(found).__name__}")
            if not found.empty:
                self._arrays[int(row)] = found
        self._index = LayerIndex(self._frame)
        kinds = self._frame.groupby("measure", sort=False)[["level", "direction"]].first()
        self._measure_kind: dict[str, tuple[str, str]] = {
            str(m): (str(level), str(direction)) for m, (level, direction) in kinds.iterrows()
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
            One mapping per row, keyed by the `COLUMNS`; none gives an empty table. Each may also carry the
            statistics `reprsim.inference.STAT_COLUMNS` (float or None; when any record has one, the table has
            all six columns) and the arrays ``"replicates"`` (1-D), ``"replicate_kind"`` (``"jackknife"``,
            ``"bootstrap"`` or ``""``) and ``"null_values"`` (1-D), kept beside the frame.
        provenance
            JSON-serialisable provenance.

        Returns
        -------
        ResultTable
            The validated table.

        Raises
        ------
        ValueError
            If a record breaks the schema (naming the row; a NaN statistic included, since missing is None),
            an array is not a finite non-empty vector, or the provenance is not JSON-serialisable.
        """
        frame, arrays = row_stats.split_records(records)
        checked = validate_frame(frame)
        found = {i: row_stats.row_arrays(a, describe_row(checked, i)) for i, a in arrays.items()}
        return cls(checked, provenance, found)

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
        frame, arrays = row_stats.stack_parts([(t._frame, t._arrays) for t in tables])
        return cls(frame, provenance, arrays)

    # -- persistence --------------------------------------------------------------------------------
    def save(self, path: str | Path, format: str | None = None) -> Path:
        """Write Parquet (provenance in the schema metadata) or CSV (provenance in a JSON sidecar).

        The rows' replicate and null arrays, when there are any, go to ``<file>.stats.npz`` beside it
        (`reprsim.results.arrays`); a stale one from an earlier save is removed when there are none.

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
        written = write_table(self._frame, self._provenance, path, format, stat_arrays=len(self._arrays))
        row_stats.write_stats_sidecar(self._frame, self._arrays, written)
        return written

    @classmethod
    def load(cls, path: str | Path, format: str | None = None) -> ResultTable:
        """Read a table written by `save` (or any file with the schema's columns).

        A CSV without its sidecar loads with empty provenance; a file without its statistics sidecar loads
        without arrays (with a `reprsim.results.arrays.StaleStatsWarning` when it says it had them).

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
            table = cls(frame, provenance)
        except ValueError as exc:
            raise ValueError(f"{str(Path(path))!r}: {exc}") from exc
        expected = stats_flag(path, format) or row_stats.expects_arrays(table.inference)
        table._arrays = row_stats.read_stats_sidecar(table._frame, path, expected)
        return table

    def subset(self, keep: Sequence[bool] | np.ndarray | pd.Series) -> ResultTable:
        """The rows where `keep` is true, with their arrays and the same provenance.

        Parameters
        ----------
        keep
            One boolean per row, in row order.

        Returns
        -------
        ResultTable
            The kept rows (a fresh table).

        Raises
        ------
        ValueError
            If `keep` does not have one boolean per row.
        """
        mask = np.asarray(keep)
        if mask.shape != (len(self),) or mask.dtype != bool:
            raise ValueError(f"keep must hold one boolean per row ({len(self)}), "
                             f"got {mask.dtype} of shape {mask.shape}")
        kept = np.flatnonzero(mask)
        new_row = {int(old): new for new, old in enumerate(kept)}
        arrays = {new_row[row]: found for row, found in self._arrays.items() if row in new_row}
        return ResultTable(self._frame.iloc[kept], self._provenance, arrays)

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
        return list(self._index.models)

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
        if model not in self._index.layers:
            raise KeyError(f"model {model!r} is not in the results table; it has {self.models()}")
        if measure is None:
            return list(self._index.layers[model])
        self._kind(measure)
        return list(self._index.measure_layers[measure].get(model, []))

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
        return self._index.values(measure, self.is_symmetric(measure), rows, columns)

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
