"""The statistics queries of a `reprsim.results.ResultTable`: one value's `Uncertainty`, and stat matrices.

`StatQueries` is mixed into `ResultTable`; it reads the table's frame (the statistics columns, when present),
its per-row arrays (`reprsim.results.arrays`) and the ``"inference"`` entry of its provenance, which the
comparison writes as ``{"options": InferenceOptions.as_dict(), "methods": {measure: {"ci": str, "null": str}}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from reprsim.inference.uncertainty import STAT_COLUMNS, Uncertainty
from reprsim.layers import LayerId

from .arrays import RowArrays
from .matrix import LayerIndex

ArrayName = Literal["replicates", "null_values"]
DEFAULT_ALPHA = 0.05


class StatQueries:
    """Statistics of a results table's values (mixed into `ResultTable`)."""

    _frame: pd.DataFrame
    _provenance: dict[str, Any]
    _index: LayerIndex
    _arrays: dict[int, RowArrays]

    def is_symmetric(self, measure: str) -> bool:  # noqa: D102 - ResultTable's
        raise NotImplementedError

    def has_stats(self) -> bool:
        """Whether the table has the statistics columns (`reprsim.inference.STAT_COLUMNS`).

        Returns
        -------
        bool
            True when the columns are there, even if every entry is <NA>.
        """
        return STAT_COLUMNS[0] in self._frame.columns

    def has_arrays(self) -> bool:
        """Whether any row carries replicates or null values.

        Returns
        -------
        bool
            True when at least one row has an array.
        """
        return bool(self._arrays)

    @property
    def inference(self) -> dict[str, Any]:
        """The provenance's ``"inference"`` entry (a copy; ``{}`` when the table has none)."""
        entry = self._provenance.get("inference")
        return {k: v for k, v in entry.items()} if isinstance(entry, Mapping) else {}

    @property
    def alpha(self) -> float:
        """The level the statistics were computed at: ``inference["options"]["alpha"]``, default 0.05."""
        options = self.inference.get("options")
        value = options.get("alpha") if isinstance(options, Mapping) else None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1
        return float(value) if ok else DEFAULT_ALPHA  # type: ignore[arg-type]

    def inference_methods(self, measure: str) -> tuple[str, str]:
        """How a measure's intervals and nulls were obtained, from the provenance.

        Parameters
        ----------
        measure
            A measure name.

        Returns
        -------
        tuple of (str, str)
            ``(ci method, null method)``, ``""`` where the provenance does not say.
        """
        methods = self.inference.get("methods")
        entry = methods.get(measure) if isinstance(methods, Mapping) else None
        if not isinstance(entry, Mapping):
            return "", ""
        return str(entry.get("ci", "") or ""), str(entry.get("null", "") or "")

    def _row(self, measure: str, a: LayerId | tuple[str, int], b: LayerId | tuple[str, int]) -> int:
        """The frame row of one pair; KeyError naming it when it was not computed."""
        symmetric = self.is_symmetric(measure)
        rows = self._index.row_matrix(measure, symmetric)
        pos_a, pos_b = self._index.positions([LayerId(*a), LayerId(*b)])
        row = int(rows[pos_a, pos_b])
        if row < 0:
            la, lb = LayerId(*a), LayerId(*b)
            raise KeyError(f"measure {measure!r} has no value for ({la.model}, layer {la.layer}) -> "
                           f"({lb.model}, layer {lb.layer})")
        return row

    def uncertainty(self, measure: str, a: LayerId | tuple[str, int], b: LayerId | tuple[str, int]) -> Uncertainty:
        """The statistics of one value: its columns, its arrays and how they were obtained.

        Parameters
        ----------
        measure
            A measure of the table.
        a, b
            The two representations, as for `ResultTable.value` (either order for a symmetric measure).

        Returns
        -------
        reprsim.inference.Uncertainty
            ``None`` for each statistic that is missing (all of them in a table without statistics columns),
            the methods from ``provenance["inference"]["methods"]``, and read-only replicates and null values
            when the row has them.

        Raises
        ------
        KeyError
            If the measure, a model or a layer is not in the table, or the pair was not computed.
        """
        row = self._row(measure, a, b)
        stats: dict[str, float | None] = {}
        if self.has_stats():
            for column in STAT_COLUMNS:
                value = self._frame[column].iloc[row]
                stats[column] = None if pd.isna(value) else float(value)
        ci_method, null_method = self.inference_methods(measure)
        arrays = self._arrays.get(row, RowArrays())
        return Uncertainty(**stats, ci_method=ci_method, null_method=null_method, replicates=arrays.replicates,
                           replicate_kind=arrays.replicate_kind, null_values=arrays.null_values)

    def stat_matrix(self, measure: str, column: str, rows: Sequence[LayerId], columns: Sequence[LayerId]) -> np.ndarray:
        """One statistic of every pair of some representations with some others, for display.

        Parameters
        ----------
        measure
            A measure of the table.
        column
            One of `reprsim.inference.STAT_COLUMNS`.
        rows, columns
            The "from" and "to" representations.

        Returns
        -------
        numpy.ndarray
            ``out[i, j]``: the statistic of sim(rows[i] -> columns[j]); NaN where it is missing, the pair was
            not computed, or the table has no statistics columns.

        Raises
        ------
        KeyError
            If the measure, a model or a layer is not in the table.
        ValueError
            If `column` is not a statistics column.
        """
        if column not in STAT_COLUMNS:
            raise ValueError(f"unknown statistics column {column!r}; use one of {list(STAT_COLUMNS)}")
        found = self._row_block(measure, rows, columns)
        if not self.has_stats():
            return np.full(found.shape, np.nan)
        values = self._frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
        return np.where(found >= 0, values[np.maximum(found, 0)], np.nan) if len(values) else found * np.nan

    def array_stack(self, measure: str, rows: Sequence[LayerId], columns: Sequence[LayerId],
                    name: ArrayName = "replicates") -> tuple[str, np.ndarray] | None:
        """The replicates (or null values) of every pair of a block, stacked, when every pair has them alike.

        The k-th replicate (block resampling, or row permutation) is the same for every pair of a measure, so a
        statistic of several values (a model-level aggregate, a difference) can be recomputed replicate by
        replicate.

        Parameters
        ----------
        measure
            A measure of the table.
        rows, columns
            The "from" and "to" representations.
        name
            ``"replicates"`` or ``"null_values"``.

        Returns
        -------
        tuple of (str, numpy.ndarray) or None
            ``(kind, stack)`` with stack ``(R, len(rows), len(columns))`` and kind the replicate kind
            (``"permutation"`` for null values); None when a pair was not computed, lacks the array, or the
            pairs' arrays differ in kind or length.

        Raises
        ------
        KeyError
            If the measure, a model or a layer is not in the table.
        ValueError
            If `name` is neither array.
        """
        if name not in ("replicates", "null_values"):
            raise ValueError(f"name must be 'replicates' or 'null_values', got {name!r}")
        found = self._row_block(measure, rows, columns)
        if found.size == 0 or (found < 0).any():
            return None
        picked = [self._arrays.get(int(r), RowArrays()) for r in found.ravel()]
        arrays = [getattr(a, name) for a in picked]
        if any(x is None for x in arrays) or len({x.size for x in arrays}) != 1:
            return None
        kinds = {a.replicate_kind for a in picked} if name == "replicates" else {"permutation"}
        if len(kinds) != 1:
            return None
        stack = np.stack(arrays, axis=-1).reshape(arrays[0].size, *found.shape)
        return kinds.pop(), stack

    def _row_block(self, measure: str, rows: Sequence[LayerId], columns: Sequence[LayerId]) -> np.ndarray:
        """Frame rows of a block of pairs, -1 where not computed."""
        matrix = self._index.row_matrix(measure, self.is_symmetric(measure))
        return matrix[np.ix_(self._index.positions(rows), self._index.positions(columns))]
