"""Per-fold moments of a pair for cross-validated linear predictivity, accumulated in one pass over the rows.

`FoldMoments` keeps one `CrossMoments` of (X, Y) per fold (the rows of whole sentences, see
`reprsim.measures.predictivity.row_folds`); the ridge fit of each held-out fold uses the pooled moments of the
other folds, so the rows are read once whatever the number of folds, and the result equals
`reprsim.measures.linear_predictivity` on the same rows.

>>> acc = FoldMoments.from_sentences((p, q), sentence_lengths, folds=5)   # doctest: +SKIP
>>> for x_chunk, y_chunk in chunks:                                        # doctest: +SKIP  (rows in order)
...     acc.update(x_chunk, y_chunk)
>>> acc.result(lam=1.0, score="pearson").a_to_b                             # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import torch

from reprsim.arrays import ArrayLike
from reprsim.measures.predictivity import FoldStats, check_score, cross_validated, row_folds
from reprsim.measures.spectral import check_lam

from .checks import Precision, check_precision, resolve_device
from .linear_fit import Directed
from .moments import CrossMoments


class FoldMoments:
    """One pair's centred moments per fold, from row chunks streamed in order.

    Parameters
    ----------
    widths
        (p, q), the widths of X and Y.
    fold_of_row
        (n,) the fold index (0..k-1) of every row, in row order (see `row_folds`).
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    precision
        ``"float64"``, or ``"float32"`` GEMMs added into float64 sums.

    Raises
    ------
    ValueError
        If `fold_of_row` is empty, not integer, or leaves a fold without rows; or the device or precision is
        invalid.
    """

    def __init__(self, widths: tuple[int, int], fold_of_row: np.ndarray, *, device: str | torch.device = "cpu",
                 precision: Precision = "float64") -> None:
        folds = np.asarray(fold_of_row)
        if folds.ndim != 1 or folds.size == 0 or not np.issubdtype(folds.dtype, np.integer):
            raise ValueError("fold_of_row must be a non-empty 1-D array of integer fold indices")
        k = int(folds.max()) + 1
        missing = sorted(set(range(k)) - set(np.unique(folds).tolist()))
        if int(folds.min()) < 0 or missing:
            raise ValueError(f"fold_of_row must give every fold 0..{k - 1} some rows; missing {missing}")
        self.fold_of_row = folds.astype(np.int64)
        self.folds = k
        device, precision = resolve_device(device), check_precision(precision)
        self._moments = [CrossMoments(list(widths), device=device, precision=precision) for _ in range(k)]
        self._offset = 0

    @classmethod
    def from_sentences(cls, widths: tuple[int, int], sentence_lengths: ArrayLike, folds: int = 5,
                       **kwargs: object) -> FoldMoments:
        """Folds of consecutive whole sentences, as `reprsim.measures.linear_predictivity` makes them.

        Parameters
        ----------
        widths
            (p, q).
        sentence_lengths
            Rows per sentence, in row order.
        folds
            The number of folds (at most the number of sentences).
        **kwargs
            ``device`` and ``precision``, as the constructor takes them.

        Returns
        -------
        FoldMoments
            An empty accumulator.

        Raises
        ------
        ValueError
            If `folds` is below 2 or exceeds the number of sentences, or a length is not positive.
        """
        n = int(np.sum(np.asarray(sentence_lengths, dtype=np.int64)))
        return cls(widths, row_folds(n, folds, sentence_lengths=sentence_lengths), **kwargs)  # type: ignore[arg-type]

    @property
    def n_rows(self) -> int:
        """Rows added so far."""
        return self._offset

    def update(self, X_chunk: ArrayLike, Y_chunk: ArrayLike) -> None:
        """Add the next rows of X and Y (in the row order of `fold_of_row`).

        Parameters
        ----------
        X_chunk, Y_chunk
            The same rows of X (rows x p) and Y (rows x q).

        Raises
        ------
        ValueError
            If the chunks hold different row counts, more rows arrive than `fold_of_row` has, or a chunk is
            malformed (see `CrossMoments.update`).
        """
        rows = int(np.shape(X_chunk)[0])
        if int(np.shape(Y_chunk)[0]) != rows:
            raise ValueError(f"X and Y chunks hold different row counts: {rows} and {int(np.shape(Y_chunk)[0])}")
        if self._offset + rows > self.fold_of_row.size:
            raise ValueError(f"more rows than the {self.fold_of_row.size} the folds were made for")
        labels = self.fold_of_row[self._offset : self._offset + rows]
        x = X_chunk if isinstance(X_chunk, torch.Tensor) else np.asarray(X_chunk)
        y = Y_chunk if isinstance(Y_chunk, torch.Tensor) else np.asarray(Y_chunk)
        for k in np.unique(labels):
            picked = np.nonzero(labels == k)[0]
            index = torch.from_numpy(picked) if isinstance(x, torch.Tensor) else picked
            self._moments[int(k)].update([x[index], y[index]], names=("X", "Y"))
        self._offset += rows

    def stats(self) -> list[FoldStats]:
        """Every fold's centred moments.

        Returns
        -------
        list of FoldStats
            One per fold.

        Raises
        ------
        ValueError
            If fewer rows were added than `fold_of_row` has, or a fold has fewer than 2 rows.
        """
        if self._offset != self.fold_of_row.size:
            raise ValueError(f"{self._offset} rows were added; the folds were made for {self.fold_of_row.size}")
        out = []
        for k, m in enumerate(self._moments):
            if m.n_rows(0) < 2:
                raise ValueError(f"fold {k} has {m.n_rows(0)} row(s); a fold needs at least 2")
            out.append(FoldStats(m.n_rows(0), m.mean(0), m.mean(1), m.centred(0, 0), m.centred(1, 1), m.centred(0, 1)))
        return out

    def result(self, lam: float = 0.0, score: str = "pearson") -> Directed[float]:
        """Cross-validated linear predictivity in both directions.

        Parameters
        ----------
        lam
            The ridge penalty, >= 0.
        score
            ``"pearson"`` or ``"r2"``.

        Returns
        -------
        Directed of float
            ``a_to_b`` = ``linear_predictivity(X, Y, ...)`` (X predicted from Y), ``b_to_a`` the reverse.

        Raises
        ------
        ValueError
            If `lam` or `score` is invalid, or as `stats`.
        """
        lam, kind = check_lam(lam, "linear_predictivity"), check_score(score)
        stats = self.stats()
        return Directed(cross_validated(stats, lam, kind), cross_validated([s.swapped() for s in stats], lam, kind))
