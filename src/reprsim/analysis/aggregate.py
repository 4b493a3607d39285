"""From layer-pair similarities to layer-to-model and model-to-model similarities (measures.md).

- Layer to model: sim(l, M') = best over layers l' of M' of sim(l -> l'), "best" being max for similarity
  measures and min for distances.
- Model to model: sim(M -> M') = mean over layers l of M of sim(l, M'); symmetrised by averaging the two
  directions.

Only pairs of different models are aggregated: a model's best match to itself is its own layer, which
says nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import permutations

import numpy as np
import pandas as pd

from reprsim.results import ResultTable


def larger_means_similar(measure: str, override: bool | None = None) -> bool:
    """Whether larger values of `measure` mean more similar (False for distances).

    `override` wins when given (for measures outside the registry); otherwise the measure registry
    (`reprsim.measures.get(name).larger_is_similar`) decides.
    """
    if override is not None:
        return bool(override)
    from reprsim import measures as registry  # imported late: the registry pulls in torch

    try:
        info = registry.get(measure)
    except KeyError as exc:
        raise KeyError(
            f"measure {measure!r} is not in the measure registry, so whether larger means more similar "
            f"is unknown; pass larger_is_similar=True or False"
        ) from exc
    return bool(info.larger_is_similar)


def best_match(values: np.ndarray, larger_is_similar: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the best value across columns and the column that attains it (first one on ties)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] == 0:
        raise ValueError(f"best_match needs a 2-D array with at least one column, got shape {values.shape}")
    best_column = np.argmax(values, axis=1) if larger_is_similar else np.argmin(values, axis=1)
    return values[np.arange(values.shape[0]), best_column], best_column


def distinct_models(table: ResultTable, models: Sequence[str] | None, measure: str | None = None) -> list[str]:
    """The models to aggregate over (default: all, in table order; with `measure`, those it covers: a model
    without attention has no attention rows); at least two are needed."""
    chosen = table.layer_ids(models, measure)
    names = list(dict.fromkeys(label.model for label in chosen))
    if models is not None and measure is not None:
        uncovered = [m for m in models if m not in names]
        if uncovered:
            raise ValueError(f"the results table has no {measure} rows for model {uncovered[0]!r}")
    if len(names) < 2:
        raise ValueError(f"model-level aggregation needs at least two models, got {names}")
    return names


def layer_to_model(
    table: ResultTable,
    measure: str,
    models: Sequence[str] | None = None,
    larger_is_similar: bool | None = None,
) -> pd.DataFrame:
    """sim(l, M') for every layer l of every model M and every other model M'.

    Columns: model, layer, other_model, measure, value, best_layer (the layer l' of M' that attains it).
    """
    larger = larger_means_similar(measure, larger_is_similar)
    names = distinct_models(table, models, measure)
    parts = []
    for model, other in permutations(names, 2):
        block = table.pair_matrix(measure, model, other)
        best, best_column = best_match(block, larger)
        other_layers = np.asarray(table.layers(other, measure))
        parts.append(
            pd.DataFrame(
                {
                    "model": model,
                    "layer": table.layers(model, measure),
                    "other_model": other,
                    "measure": measure,
                    "value": best,
                    "best_layer": other_layers[best_column],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def model_to_model(
    table: ResultTable,
    measure: str,
    models: Sequence[str] | None = None,
    larger_is_similar: bool | None = None,
) -> pd.DataFrame:
    """sim(M -> M') for every ordered pair of different models, with its symmetrised value.

    Columns: model_a, model_b, measure, value (= mean over layers of a of their best match in b),
    symmetric (= mean of the a->b and b->a values, identical for both orders).
    """
    per_layer = layer_to_model(table, measure, models, larger_is_similar)
    directed = (
        per_layer.groupby(["model", "other_model"], sort=False)["value"]
        .mean()
        .reset_index()
        .rename(columns={"model": "model_a", "other_model": "model_b"})
    )
    reverse = directed.rename(columns={"model_a": "model_b", "model_b": "model_a", "value": "reverse"})
    merged = directed.merge(reverse, on=["model_a", "model_b"], how="left", validate="one_to_one")
    merged["symmetric"] = (merged["value"] + merged["reverse"]) / 2.0
    merged.insert(2, "measure", measure)
    return merged[["model_a", "model_b", "measure", "value", "symmetric"]]


def model_matrix(
    table: ResultTable,
    measure: str,
    models: Sequence[str] | None = None,
    larger_is_similar: bool | None = None,
    symmetric: bool = False,
) -> pd.DataFrame:
    """Model x model table of sim(row -> column) (or the symmetrised value); the diagonal is left empty.

    The diagonal is NaN on purpose: a model compared with itself is not an aggregate of this analysis.
    """
    tidy = model_to_model(table, measure, models, larger_is_similar)
    names = distinct_models(table, models, measure)
    column = "symmetric" if symmetric else "value"
    wide = tidy.pivot(index="model_a", columns="model_b", values=column)
    wide = wide.reindex(index=names, columns=names)
    wide.index.name = "model"
    wide.columns.name = None
    return wide
