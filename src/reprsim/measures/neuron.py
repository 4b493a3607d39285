"""Neuron-level similarity: maxsim (Wu et al. 2020, "neuronsim").

``sim(X -> Y) = mean over neurons x_i of X of max over neurons y_j of Y of |Pearson(x_i, y_j)|``: how well
each neuron of X is matched by its single best partner in Y. It is directed:
``maxsim(X, Y) != maxsim(Y, X)``.

Constant neurons (zero variance) have no correlation. They are excluded - never divided by - and counted;
the functions here warn once (`ConstantNeuronWarning`) when any were excluded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reprsim.arrays import ArrayLike, as_pair, centre, constant_columns, warn_constant


@dataclass(frozen=True)
class NeuronMatch:
    """Best partner in Y of every neuron of X (result of `maxsim_per_neuron`).

    Parameters
    ----------
    best
        (p,) float64, ``max_j |Pearson(x_i, y_j)|`` per X neuron; 0.0 for a constant (excluded) X neuron.
    index
        (p,) int64, the Y neuron attaining `best` (the first one on ties); -1 for a constant X neuron.
    valid
        (p,) bool, True for the X neurons that are not constant (those that enter the maxsim mean).
    n_constant_x, n_constant_y
        How many neurons of X and of Y were excluded as constant.
    """

    best: np.ndarray
    index: np.ndarray
    valid: np.ndarray
    n_constant_x: int
    n_constant_y: int

    @property
    def score(self) -> float:
        """maxsim(X -> Y): the mean of `best` over the valid X neurons."""
        return float(self.best[self.valid].mean())


def nonconstant_columns(x: torch.Tensor, name: str, measure: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the constant columns of a representation.

    A constant column carries no signal once centred (what is left is rounding noise), so every measure drops
    it before normalising; if nothing is left, the measure is undefined and the error says so.

    Parameters
    ----------
    x
        The representation, n x p, float64.
    name
        What the error message calls it (``"X"`` or ``"Y"``).
    measure
        The measure's name, which starts the message.

    Returns
    -------
    varying : torch.Tensor
        The columns of `x` that vary, in their order.
    constant : torch.Tensor
        Boolean mask over all p columns, True for those dropped as constant.

    Raises
    ------
    ValueError
        If every column of `x` is constant.
    """
    constant = _checked_constant(x, name, measure)
    return (x[:, ~constant] if bool(constant.any()) else x), constant


def _checked_constant(x: torch.Tensor, name: str, measure: str, spread: torch.Tensor | None = None) -> torch.Tensor:
    """`constant_columns`, refusing a representation with no varying column."""
    constant = constant_columns(x, spread)
    if bool(constant.all()):
        raise ValueError(
            f"{measure}: every neuron of {name} is constant (zero variance); the similarity is undefined"
        )
    return constant


def standardised_columns(x: torch.Tensor, name: str, measure: str) -> tuple[torch.Tensor, torch.Tensor]:
    """`nonconstant_columns` followed by `unit_columns`, centring once.

    Takes and raises what `nonconstant_columns` does; returns the varying columns centred and scaled to unit
    norm (in their order) with the same boolean mask of the constant ones.
    """
    c = centre(x)
    spread = c.square().sum(dim=0).sqrt()
    constant = _checked_constant(x, name, measure, spread)
    if bool(constant.any()):
        c, spread = c[:, ~constant], spread[~constant]
    return c / spread, constant


def unit_columns(x: torch.Tensor) -> torch.Tensor:
    """Centre each column and scale it to unit Euclidean norm.

    Inner products of such columns are Pearson correlations, and the scale of each neuron no longer affects
    a numerical rank decision.

    Parameters
    ----------
    x
        A matrix whose columns are not constant (see `nonconstant_columns`).

    Returns
    -------
    torch.Tensor
        The centred, unit-norm columns.
    """
    c = centre(x)
    return c / c.norm(dim=0, keepdim=True)


def _match_neurons(x: torch.Tensor, y: torch.Tensor) -> NeuronMatch:
    """Best |Pearson| partner in y for every column of x, constant columns excluded on both sides."""
    x_unit, x_const = standardised_columns(x, "X", "maxsim")
    y_unit, y_const = standardised_columns(y, "Y", "maxsim")
    corr = (x_unit.T @ y_unit).abs_().clamp_(max=1.0)
    best_var, arg_var = corr.max(dim=1)
    y_index = torch.nonzero(~y_const).squeeze(1)  # position in Y of each non-constant column

    p = x.shape[1]
    valid = (~x_const).cpu().numpy()
    best = np.zeros(p, dtype=np.float64)
    index = np.full(p, -1, dtype=np.int64)
    best[valid] = best_var.cpu().numpy()
    index[valid] = y_index[arg_var].cpu().numpy()
    return NeuronMatch(best, index, valid, int(x_const.sum()), int(y_const.sum()))


def maxsim_per_neuron(X: ArrayLike, Y: ArrayLike) -> NeuronMatch:
    """For each neuron of X, its best ``|Pearson|`` correlation with any neuron of Y, and which one (X -> Y).

    ``NeuronMatch.best`` ranks X's neurons by how well a single Y neuron reproduces them (Wu et al.'s neuron
    ranking), and ``NeuronMatch.score`` is `maxsim`.

    Parameters
    ----------
    X
        The representation whose neurons are matched, n x p.
    Y
        The representation searched for partners, n x q.

    Returns
    -------
    NeuronMatch
        The best partner of every neuron of X; constant neurons are excluded and counted (see `NeuronMatch`
        for their placeholder values).

    Raises
    ------
    ValueError
        For malformed input, or when every neuron of X or of Y is constant.

    Warns
    -----
    ConstantNeuronWarning
        Once, when any neuron of X or Y was excluded as constant.
    """
    x, y = as_pair(X, Y)
    match = _match_neurons(x, y)
    warn_constant(match.n_constant_x, match.n_constant_y, "maxsim")
    return match


def maxsim(X: ArrayLike, Y: ArrayLike) -> float:
    """maxsim(X -> Y) = ``mean_i max_j |Pearson(x_i, y_j)|`` (Wu et al. 2020 "neuronsim").

    Directed: how well each neuron of X is matched by one neuron of Y. Invariant to permuting, shifting and
    rescaling (also negating) individual neurons; not to rotations that mix neurons.

    Parameters
    ----------
    X
        The representation whose neurons are matched, n x p.
    Y
        The representation searched for partners, n x q.

    Returns
    -------
    float
        maxsim(X -> Y), in [0, 1], the mean over the non-constant neurons of X.

    Raises
    ------
    ValueError
        For malformed input, or when every neuron of X or of Y is constant.

    Warns
    -----
    ConstantNeuronWarning
        Once, when any neuron of X or Y was excluded (constant neurons are excluded and counted).
    """
    x, y = as_pair(X, Y)
    match = _match_neurons(x, y)
    warn_constant(match.n_constant_x, match.n_constant_y, "maxsim")
    return match.score
