"""How far fine-tuning moved each layer: sim(fine-tuned layer l -> base layer l), per measure.

Wu et al. (2020) compare each fine-tuned model's layer with the same layer of the model it started from,
at the representation level and the attention level; a drop in the top layers is the usual finding.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from reprsim.results import LayerId, ResultTable


def finetune_similarity(
    table: ResultTable,
    base: str,
    finetuned: Sequence[str],
    measures: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Compare each layer of fine-tuned models with the same layer of their base model.

    Parameters
    ----------
    table : ResultTable
        The results table; it must hold the pair (fine-tuned layer l, base layer l) for every layer and
        measure used.
    base : str
        The model the fine-tuned models started from.
    finetuned : sequence of str
        The fine-tuned models (a list, not a single string).
    measures : sequence of str, optional
        The measures to report; default every measure in the table. A measure that does not cover a layer
        (attention measures have no embedding layer) simply has no row for it.

    Returns
    -------
    pandas.DataFrame
        One row per (fine-tuned model, layer, measure), with columns ``model``, ``layer``, ``measure``,
        ``level`` (representation or attention) and ``value``. Directed measures use
        sim(fine-tuned -> base).

    Raises
    ------
    ValueError
        If `finetuned` is a string or empty, contains `base`, or if a fine-tuned model has a layer the base
        lacks.
    KeyError
        If a model or measure is not in the table, or a needed pair is missing.
    """
    if isinstance(finetuned, str):
        raise ValueError(f"finetuned must be a list of model names, got the string {finetuned!r}")
    if not finetuned:
        raise ValueError("finetuned lists no models")
    if base in finetuned:
        raise ValueError(f"model {base!r} is both the base and a fine-tuned model")
    known = table.models()
    unknown = [m for m in [base, *finetuned] if m not in known]
    if unknown:
        raise KeyError(f"models {unknown} are not in the results table; it has {known}")
    chosen = table.measures() if measures is None else list(measures)
    missing = [m for m in chosen if m not in table.measures()]
    if missing:
        raise KeyError(f"measures {missing} are not in the results table; it has {table.measures()}")
    base_layers = set(table.layers(base))
    parts = []
    for model in finetuned:
        layers = table.layers(model)
        extra = [layer for layer in layers if layer not in base_layers]
        if extra:
            raise ValueError(
                f"fine-tuned model {model!r} has layers {extra} that base model {base!r} lacks "
                f"(base layers {sorted(base_layers)})"
            )
        for measure in chosen:
            covered = table.layers(model, measure)  # attention measures have no embedding layer
            values = [table.value(measure, LayerId(model, layer), LayerId(base, layer)) for layer in covered]
            parts.append(
                pd.DataFrame(
                    {
                        "model": model,
                        "layer": covered,
                        "measure": measure,
                        "level": table.level(measure),
                        "value": values,
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)
