"""Layer-by-layer matrices of a results table: `LayerMatrix`, and the dense per-measure matrices behind it.

`LayerIndex` numbers every representation of a table model by model and layer by layer, records which layers
each measure covers, and builds (once per measure) the dense all-representations matrix that
`reprsim.results.ResultTable`'s pair queries read; a pair not computed is NaN there and a `KeyError` naming
the pair for the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reprsim.layers import LayerId


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


class LayerIndex:
    """Every representation of a validated results frame, numbered, with the frame's dense per-measure matrices.

    Parameters
    ----------
    frame
        A frame that passed `reprsim.results.validate_frame`; it is kept (not copied) and must not change.

    Attributes
    ----------
    models
        Models in order of first appearance (row by row, model_a before model_b).
    layers
        Each model's layers (on either side of any pair), sorted.
    position
        Each representation's row (and column) in the dense matrices, model by model and layer by layer.
    measure_layers
        Per measure, each model's layers that the measure covers (attention measures have no layer 0).
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame
        self.models, self.layers = _models_and_layers(frame)
        self.position = {
            LayerId(model, layer): i
            for i, (model, layer) in enumerate((m, layer) for m in self.models for layer in self.layers[m])
        }
        # Layers each measure covers: attention measures have no layer 0 (embeddings carry no attention).
        self.measure_layers: dict[str, dict[str, list[int]]] = {}
        for measure, rows in frame.groupby("measure", sort=False):
            sides = pd.concat([rows[["model_a", "layer_a"]].set_axis(["model", "layer"], axis=1),
                               rows[["model_b", "layer_b"]].set_axis(["model", "layer"], axis=1)])
            self.measure_layers[str(measure)] = {
                str(m): sorted(int(v) for v in set(g.layer)) for m, g in sides.groupby("model", sort=False)
            }
        self._dense: dict[str, np.ndarray] = {}
        self._rows: dict[str, np.ndarray] = {}

    def values(self, measure: str, symmetric: bool, rows: Sequence[LayerId], columns: Sequence[LayerId]) -> np.ndarray:
        """The values of every pair of some representations with some others.

        Parameters
        ----------
        measure
            A measure of the frame.
        symmetric
            Whether its rows are stored once per unordered pair.
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
            If a model or a layer is not in the frame, or a pair was not computed (naming the first one
            missing and how many are).
        """
        dense = self.dense(measure, symmetric)
        row_pos = self.positions(rows)
        col_pos = self.positions(columns)
        found = dense[np.ix_(row_pos, col_pos)]
        missing = np.argwhere(np.isnan(found))
        if missing.size:
            a, b = LayerId(*rows[missing[0][0]]), LayerId(*columns[missing[0][1]])
            raise KeyError(
                f"measure {measure!r} has no value for ({a.model}, layer {a.layer}) -> "
                f"({b.model}, layer {b.layer}) ({len(missing)} of {found.size} requested pairs missing)"
            )
        return found

    def positions(self, layers: Sequence[LayerId]) -> np.ndarray:
        """Row/column positions of representations in the dense per-measure matrices.

        Parameters
        ----------
        layers
            Representations, as `LayerId` or ``(model, layer)`` tuples.

        Returns
        -------
        numpy.ndarray
            One position each.

        Raises
        ------
        KeyError
            If a model is not in the frame, or has no such layer (listing what there is).
        """
        out = np.empty(len(layers), dtype=np.intp)
        for i, label in enumerate(layers):
            key = LayerId(str(label[0]), int(label[1]))
            if key not in self.position:
                if key.model not in self.layers:
                    raise KeyError(f"model {key.model!r} is not in the results table; it has {self.models}")
                raise KeyError(
                    f"model {key.model!r} has no layer {key.layer} in the results table; "
                    f"it has layers {self.layers[key.model]}"
                )
            out[i] = self.position[key]
        return out

    def dense(self, measure: str, symmetric: bool) -> np.ndarray:
        """All representations x all representations for one measure; NaN marks pairs not computed.

        Internal to the table: every public accessor turns a NaN it meets into a KeyError naming the pair.
        Symmetric rows are written in both orders. Built once per measure, read-only.

        Parameters
        ----------
        measure
            A measure of the frame.
        symmetric
            Whether its rows are stored once per unordered pair.

        Returns
        -------
        numpy.ndarray
            The read-only matrix, indexed by `position`.
        """
        cached = self._dense.get(measure)
        if cached is not None:
            return cached
        rows = self.row_matrix(measure, symmetric)
        values = self._frame["value"].to_numpy(dtype=np.float64)
        dense = np.where(rows >= 0, values[np.maximum(rows, 0)], np.nan) if len(values) else np.full(rows.shape, np.nan)
        dense.setflags(write=False)
        self._dense[measure] = dense
        return dense

    def row_matrix(self, measure: str, symmetric: bool) -> np.ndarray:
        """All representations x all representations for one measure: the frame row of each pair, -1 if none.

        Symmetric rows are entered in both orders. Built once per measure, read-only.

        Parameters
        ----------
        measure
            A measure of the frame.
        symmetric
            Whether its rows are stored once per unordered pair.

        Returns
        -------
        numpy.ndarray
            The read-only int matrix of row positions, indexed by `position`.
        """
        cached = self._rows.get(measure)
        if cached is not None:
            return cached
        mask = (self._frame["measure"] == measure).to_numpy()
        rows = self._frame[mask]
        index = pd.MultiIndex.from_tuples(list(self.position), names=["model", "layer"])
        pos_a = index.get_indexer(pd.MultiIndex.from_arrays([rows["model_a"], rows["layer_a"]]))
        pos_b = index.get_indexer(pd.MultiIndex.from_arrays([rows["model_b"], rows["layer_b"]]))
        matrix = np.full((len(index), len(index)), -1, dtype=np.intp)
        row_ids = np.flatnonzero(mask)
        matrix[pos_a, pos_b] = row_ids
        if symmetric:
            matrix[pos_b, pos_a] = row_ids
        matrix.setflags(write=False)
        self._rows[measure] = matrix
        return matrix


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
