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
    """Per fine-tuned model, layer and measure: the similarity of its layer l to the base's layer l.

    Columns: model, layer, measure, level, value. Directed measures use sim(fine-tuned -> base).
    Every layer of a fine-tuned model must exist in the base (ValueError otherwise).
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
