"""Cross-validated linear predictivity: ridge (or least-squares) regression of X's neurons on Y, k folds.

sim(X -> Y) fits ``X ~ Y W + b`` on all folds but one (``min ||X - Y W - b||^2 + lam ||W||_F^2``, intercept
unpenalised, as ``sklearn.linear_model.Ridge(alpha=lam)``; ``lam = 0`` is least squares), predicts the
held-out fold, scores each of X's neurons there (Pearson r of prediction and truth, or R^2 as
``sklearn.metrics.r2_score``), averages over the neurons and then over the folds.

Folds are over sentences, never splitting one: the rows of one sentence (or one group label) stay together,
and the sentences are cut into `folds` consecutive blocks of (nearly) equal sentence counts, like
``sklearn.model_selection.KFold(folds)`` over the sentences. Everything after the split is a function of
per-fold moments (`FoldStats`): the engine (`reprsim.engine.FoldMoments`) accumulates those in one pass.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from reprsim.arrays import ArrayLike, as_pair
from reprsim.measures.spectral import check_lam

PredictivityScore = Literal["pearson", "r2"]
# A target neuron whose held-out centred norm is below this fraction of its uncentred norm is constant there.
_CONSTANT_FRACTION = 1e-10


@dataclass(frozen=True)
class FoldStats:
    """Centred moments of one fold (or a union of folds) of a pair (X, Y).

    Parameters
    ----------
    n
        Rows.
    mean_x, mean_y
        Column means, (p,) and (q,).
    c_xx, c_yy, c_xy
        Centred cross-products ``X_c^T X_c`` (p x p), ``Y_c^T Y_c`` (q x q), ``X_c^T Y_c`` (p x q).
    """

    n: int
    mean_x: torch.Tensor
    mean_y: torch.Tensor
    c_xx: torch.Tensor
    c_yy: torch.Tensor
    c_xy: torch.Tensor

    @classmethod
    def from_rows(cls, x: torch.Tensor, y: torch.Tensor) -> FoldStats:
        """The moments of the rows of a fold.

        Parameters
        ----------
        x, y
            The fold's rows of X and Y, float64.

        Returns
        -------
        FoldStats
            Their moments.
        """
        mx, my = x.mean(dim=0), y.mean(dim=0)
        xc, yc = x - mx, y - my
        return cls(x.shape[0], mx, my, xc.T @ xc, yc.T @ yc, xc.T @ yc)

    def swapped(self) -> FoldStats:
        """The same moments with X and Y exchanged.

        Returns
        -------
        FoldStats
            Moments of (Y, X).
        """
        return FoldStats(self.n, self.mean_y, self.mean_x, self.c_yy, self.c_xx, self.c_xy.T)


def pooled(stats: Sequence[FoldStats]) -> FoldStats:
    """The moments of the union of folds (the parallel-axis combination of centred moments).

    Parameters
    ----------
    stats
        The folds' moments (at least one).

    Returns
    -------
    FoldStats
        Moments of all their rows together.
    """
    n = sum(s.n for s in stats)
    mean_x = sum((s.mean_x * s.n for s in stats), torch.zeros_like(stats[0].mean_x)) / n
    mean_y = sum((s.mean_y * s.n for s in stats), torch.zeros_like(stats[0].mean_y)) / n
    c_xx, c_yy, c_xy = (torch.zeros_like(stats[0].c_xx), torch.zeros_like(stats[0].c_yy),
                        torch.zeros_like(stats[0].c_xy))
    for s in stats:
        dx, dy = s.mean_x - mean_x, s.mean_y - mean_y
        c_xx = c_xx + s.c_xx + s.n * torch.outer(dx, dx)
        c_yy = c_yy + s.c_yy + s.n * torch.outer(dy, dy)
        c_xy = c_xy + s.c_xy + s.n * torch.outer(dx, dy)
    return FoldStats(n, mean_x, mean_y, c_xx, c_yy, c_xy)


def check_folds(folds: int, n_units: int, unit: str = "sentences") -> int:
    """Validate the number of folds against the number of sentences.

    Parameters
    ----------
    folds
        The number of folds, an integer >= 2.
    n_units
        The number of sentences (or groups) that the folds split.
    unit
        What the message calls them.

    Returns
    -------
    int
        `folds`.

    Raises
    ------
    ValueError
        If `folds` is not an integer >= 2 or exceeds `n_units`.
    """
    if isinstance(folds, bool) or not isinstance(folds, numbers.Integral) or folds < 2:
        raise ValueError(f"linear_predictivity: option folds must be an integer >= 2, got {folds!r}")
    if folds > n_units:
        raise ValueError(f"linear_predictivity: option folds={folds} exceeds the number of {unit} ({n_units}); "
                         "folds never split a sentence")
    return int(folds)


def row_folds(n: int, folds: int, sentence_lengths: ArrayLike | None = None,
              groups: ArrayLike | None = None) -> np.ndarray:
    """The fold of every row: sentences (or groups) cut into `folds` consecutive blocks.

    Parameters
    ----------
    n
        Rows.
    folds
        The number of folds.
    sentence_lengths
        Rows per sentence, in row order (they must sum to n).
    groups
        A label per row instead (rows with one label stay together; labels are ordered by first row).
        Neither given: every row is its own sentence.

    Returns
    -------
    numpy.ndarray
        (n,) int64 fold indices in 0..folds-1; the first ``n_sentences % folds`` folds get one sentence more.

    Raises
    ------
    ValueError
        If both or malformed lengths or groups are given (wrong total, non-positive length), or `folds`
        exceeds the number of sentences.
    """
    if sentence_lengths is not None and groups is not None:
        raise ValueError("linear_predictivity: give sentence_lengths or groups, not both")
    if sentence_lengths is not None:
        lengths = np.asarray(sentence_lengths, dtype=np.int64).ravel()
        if lengths.size == 0 or (lengths < 1).any() or int(lengths.sum()) != n:
            raise ValueError(f"linear_predictivity: sentence_lengths must be positive and sum to the {n} rows, "
                             f"got {lengths.size} lengths summing to {int(lengths.sum())}")
        unit_of_row = np.repeat(np.arange(lengths.size), lengths)
    elif groups is not None:
        labels = np.asarray(groups).ravel()
        if labels.size != n:
            raise ValueError(f"linear_predictivity: groups must give one label per row ({n}), got {labels.size}")
        _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
        order = np.argsort(np.argsort(first))  # labels numbered by their first row
        unit_of_row = order[inverse]
    else:
        unit_of_row = np.arange(n)
    n_units = int(unit_of_row.max()) + 1
    k = check_folds(folds, n_units)
    sizes = np.full(k, n_units // k)
    sizes[: n_units % k] += 1
    fold_of_unit = np.repeat(np.arange(k), sizes)
    return fold_of_unit[unit_of_row]


def check_score(score: str) -> PredictivityScore:
    """Validate the held-out score.

    Parameters
    ----------
    score
        ``"pearson"`` or ``"r2"``.

    Returns
    -------
    str
        `score`.

    Raises
    ------
    ValueError
        If it is neither.
    """
    if score not in ("pearson", "r2"):
        raise ValueError(f"linear_predictivity: option score must be 'pearson' or 'r2', got {score!r}")
    return score  # type: ignore[return-value]


def ridge_weights(train: FoldStats, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The ridge fit ``X ~ Y W + b`` of centred training moments.

    Parameters
    ----------
    train
        The training folds' moments.
    lam
        The penalty; 0 gives the minimum-norm least-squares fit (eigenvalues of ``Y_c^T Y_c`` at most
        ``10 q eps`` of the largest are treated as 0).

    Returns
    -------
    W : torch.Tensor
        q x p weights.
    b : torch.Tensor
        (p,) intercept, ``mean_x - mean_y W``.
    """
    c_yx = train.c_xy.T
    if lam > 0.0:
        eye = torch.eye(train.c_yy.shape[0], dtype=train.c_yy.dtype, device=train.c_yy.device)
        w = torch.linalg.solve(train.c_yy + lam * eye, c_yx)
    else:
        values, vectors = torch.linalg.eigh(train.c_yy)
        top = float(values.max())
        keep = values > 10.0 * values.numel() * torch.finfo(torch.float64).eps * top
        v = vectors[:, keep]
        w = v @ ((v.T @ c_yx) / values[keep][:, None])
    return w, train.mean_x - train.mean_y @ w


def held_out_score(w: torch.Tensor, b: torch.Tensor, test: FoldStats, score: PredictivityScore) -> float:
    """Mean over X's neurons of the held-out Pearson r or R^2 of the predictions ``Y W + b``.

    Parameters
    ----------
    w, b
        The fit (`ridge_weights`).
    test
        The held-out fold's moments.
    score
        ``"pearson"`` or ``"r2"``.

    Returns
    -------
    float
        The mean over the neurons that vary in the fold (a prediction without variance has r = 0).

    Raises
    ------
    ValueError
        If no neuron of X varies in the fold.
    """
    var_x = torch.diagonal(test.c_xx)
    cov = (w * test.c_xy.T).sum(dim=0)  # held-out covariance of each prediction with its neuron
    var_pred = ((test.c_yy @ w) * w).sum(dim=0)
    varying = var_x > _CONSTANT_FRACTION**2 * (var_x + test.n * test.mean_x.square())
    if not bool(varying.any()):
        raise ValueError("linear_predictivity: no neuron varies in a held-out fold")
    if score == "pearson":
        denominator = (var_pred * var_x).sqrt()
        r = torch.where(denominator > 0.0, cov / denominator.clamp(min=torch.finfo(torch.float64).tiny),
                        torch.zeros_like(cov))
        return float(r[varying].mean())
    offset = test.mean_x - (test.mean_y @ w + b)
    residual = var_x - 2.0 * cov + var_pred + test.n * offset.square()
    return float((1.0 - residual[varying] / var_x[varying]).mean())


def cross_validated(stats: Sequence[FoldStats], lam: float, score: PredictivityScore) -> float:
    """sim(X -> Y) from the folds' moments: fit on all folds but one, score it, average over the folds.

    Parameters
    ----------
    stats
        One `FoldStats` per fold (X the targets, Y the regressors).
    lam
        The ridge penalty.
    score
        ``"pearson"`` or ``"r2"``.

    Returns
    -------
    float
        The mean held-out score.
    """
    values = []
    for k, test in enumerate(stats):
        w, b = ridge_weights(pooled([s for j, s in enumerate(stats) if j != k]), lam)
        values.append(held_out_score(w, b, test, score))
    return float(np.mean(values))


def linear_predictivity(
    X: ArrayLike,
    Y: ArrayLike,
    lam: float = 0.0,
    score: PredictivityScore = "pearson",
    folds: int = 5,
    sentence_lengths: ArrayLike | None = None,
    groups: ArrayLike | None = None,
) -> float:
    """Cross-validated linear predictivity of X from Y (ridge, or least squares at ``lam = 0``).

    sim(X -> Y): how well a linear map of Y predicts X's neurons on held-out sentences (see the module
    docstring for the fit, the folds and the scores). Directed. At ``lam = 0`` invariant to invertible linear
    maps of Y and to rescaling X; a ridge penalty breaks the invariance to maps of Y.

    Parameters
    ----------
    X
        The representation predicted, n x p.
    Y
        The representation it is predicted from, n x q.
    lam
        The ridge penalty on the sum of squared errors, >= 0 (sklearn's ``Ridge(alpha=lam)``).
    score
        ``"pearson"`` (mean held-out Pearson r) or ``"r2"`` (mean held-out R^2, ``sklearn.metrics.r2_score``).
    folds
        The number of folds, at least 2 and at most the number of sentences.
    sentence_lengths
        Rows per sentence, so that folds keep sentences whole (default: every row is a sentence).
    groups
        A label per row instead of `sentence_lengths`.

    Returns
    -------
    float
        The mean over folds of the mean over X's neurons; at most 1.

    Raises
    ------
    ValueError
        For malformed input, a negative `lam`, an unknown `score`, `folds` below 2 or above the number of
        sentences, bad `sentence_lengths` or `groups`, or a held-out fold in which no neuron of X varies.
    """
    lam, score = check_lam(lam, "linear_predictivity"), check_score(score)
    x, y = as_pair(X, Y)
    fold_of_row = torch.from_numpy(row_folds(x.shape[0], folds, sentence_lengths, groups)).to(x.device)
    stats = [FoldStats.from_rows(x[fold_of_row == k], y[fold_of_row == k]) for k in range(int(folds))]
    return cross_validated(stats, lam, score)
