"""Localisation score of a layer (Wu et al. 2020; docs/measures.md, "From layers to models").

score(l) = z(mean maxsim of l to every layer of every other model)
         - z(mean SVCCA of l to every layer of every other model),
with z-scores taken across all layers of all models considered. A high score means the information a layer
shares with other models sits in individual neurons (neuron-level similarity is high relative to the
subspace level); a low score means it is distributed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from reprsim.analysis.aggregate import distinct_models
from reprsim.results import ResultTable

NEURON_MEASURE = "maxsim"
SUBSPACE_MEASURE = "svcca"


def mean_to_other_models(table: ResultTable, measure: str, models: Sequence[str]) -> pd.DataFrame:
    """Average, per layer, its similarity to every layer of every other model.

    Parameters
    ----------
    table : ResultTable
        The results table.
    measure : str
        The measure to average.
    models : sequence of str
        The models considered; the mean for a layer l of model M is over sim(l -> l') for every layer l' of
        every other model of `models` that `measure` covers.

    Returns
    -------
    pandas.DataFrame
        One row per layer of each model, with columns ``model``, ``layer`` and ``value``.

    Raises
    ------
    KeyError
        If `measure`, a model or a needed pair is not in the table.
    """
    parts = []
    for model in models:
        others = [label for label in table.layer_ids(models, measure) if label.model != model]
        rows = table.layer_ids([model], measure)
        means = table.values(measure, rows, others).mean(axis=1)
        parts.append(pd.DataFrame({"model": model, "layer": [r.layer for r in rows], "value": means}))
    return pd.concat(parts, ignore_index=True)


def zscore(values: np.ndarray, what: str) -> np.ndarray:
    """Standardise values: (x - mean) / std, with the population standard deviation (ddof=0).

    Parameters
    ----------
    values : numpy.ndarray
        The values, converted to float64.
    what : str
        What the values are, for the error message.

    Returns
    -------
    numpy.ndarray
        The z-scores, same shape as `values`.

    Raises
    ------
    ValueError
        If the values are constant (or NaN): they have no z-score.
    """
    values = np.asarray(values, dtype=np.float64)
    spread = values.std()
    if not spread > 0:
        raise ValueError(f"cannot z-score {what}: all {values.size} layers have the same value")
    return (values - values.mean()) / spread


def localisation_scores(
    table: ResultTable,
    models: Sequence[str] | None = None,
    neuron_measure: str = NEURON_MEASURE,
    subspace_measure: str = SUBSPACE_MEASURE,
) -> pd.DataFrame:
    """Compute the localisation score of every layer of some models.

    score(l) = z(mean neuron-level similarity of l to the layers of the other models) - z(mean subspace-level
    similarity of l to them), the z-scores taken across all layers of all the models. A high score means what
    a layer shares with other models sits in individual neurons; a low score means it is distributed.

    Parameters
    ----------
    table : ResultTable
        The results table, holding both measures.
    models : sequence of str, optional
        The models considered (at least two); default all models in the table.
    neuron_measure : str, default "maxsim"
        The neuron-level measure.
    subspace_measure : str, default "svcca"
        The subspace-level measure.

    Returns
    -------
    pandas.DataFrame
        One row per layer that both measures cover (joined on model and layer, not by position), with
        columns ``model``, ``layer``, ``neuron_mean``, ``subspace_mean``, ``neuron_z``, ``subspace_z`` and
        ``score``.

    Raises
    ------
    KeyError
        If either measure, a model or a needed pair is not in the table.
    ValueError
        If fewer than two models are given, the two measures share no layer, or either mean is constant
        across layers (no z-score).
    """
    names = distinct_models(table, models)
    for measure in (neuron_measure, subspace_measure):
        if measure not in table.measures():
            raise KeyError(
                f"localisation needs measure {measure!r}, which the results table lacks; "
                f"it has {table.measures()}"
            )
    neuron = mean_to_other_models(table, neuron_measure, names)
    subspace = mean_to_other_models(table, subspace_measure, names)
    # Joined on (model, layer), not by position: the two measures may cover different layers.
    out = neuron.rename(columns={"value": "neuron_mean"}).merge(
        subspace.rename(columns={"value": "subspace_mean"}), on=["model", "layer"], how="inner"
    )
    if out.empty:
        raise ValueError(f"{neuron_measure} and {subspace_measure} share no layer of {names}")
    out["neuron_z"] = zscore(out["neuron_mean"].to_numpy(), f"the mean {neuron_measure}")
    out["subspace_z"] = zscore(out["subspace_mean"].to_numpy(), f"the mean {subspace_measure}")
    out["score"] = out["neuron_z"] - out["subspace_z"]
    return out
