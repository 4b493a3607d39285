"""What the report says about each measure: an explanation from the registry, and the baselines to read it by.

Nothing here is written per measure by hand: definitions, conventions, references, costs and invariances come
from `reprsim.measures.get`, and baselines from the table (random-weight controls) or from the measure's own
chance level where it has one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

INVARIANCE_WORDS = {
    "permutation": "permuting neurons",
    "orthogonal": "rotations and reflections (orthogonal maps)",
    "isotropic_scaling": "scaling by a positive constant",
    "invertible_linear": "any invertible linear map of either side",
    "invertible_linear_y_only": "any invertible linear map of the second representation (Y) only",
}
CONTROL_PATTERN = re.compile(r"[-_ .]?random(?:[-_ .]|$)", re.IGNORECASE)
JS_FLOOR = 1.0 - math.log(2.0)  # attention_js of two attention rows with disjoint support (natural log)


@dataclass(frozen=True)
class Explanation:
    """A measure's registry facts, worded for the page.

    Attributes
    ----------
    summary : str
        The registry's one-line description (empty outside the registry).
    sentences : tuple of str
        Definition, what larger means, direction, invariances, conventions, reference and cost, in order.
    """

    summary: str
    sentences: tuple[str, ...]


def _registry_entry(measure: str) -> Any | None:
    """The measure's registry entry, or None for a measure outside the registry."""
    from reprsim import measures as registry  # imported late: the registry pulls in torch

    try:
        return registry.get(measure)
    except (KeyError, ValueError):
        return None


def explain(measure: str, larger_is_similar: bool, symmetric: bool) -> Explanation:
    """Word a measure's registry entry as one paragraph: what it computes and how to read it.

    Parameters
    ----------
    measure : str
        The measure's name or spec (``"svcca(keep=0.9)"`` explains svcca and names the options).
    larger_is_similar : bool
        Whether larger means more similar (used for a measure outside the registry too).
    symmetric : bool
        Whether the table holds the measure as symmetric.

    Returns
    -------
    Explanation
        The registry's description and the paragraph's sentences.
    """
    info = _registry_entry(measure)
    larger = (
        "Larger values mean more similar."
        if larger_is_similar
        else "This is a distance: smaller values mean more similar (0 for identical representations)."
    )
    direction = (
        "Symmetric: the value of (X, Y) equals that of (Y, X)."
        if symmetric
        else "Directed: sim(X → Y) says how well X is accounted for by Y; in the heatmaps X is the row and Y "
        "the column, and both orders are shown."
    )
    if info is None:
        return Explanation("", ("This measure is not in reprsim's measure registry, so no definition is "
                                "available.", larger, direction))
    sentences = [info.definition.rstrip(".") + ".", larger, direction]
    if info.options:
        options = ", ".join(f"{k}={v}" for k, v in sorted(info.options.items()))
        sentences.append(f"Computed with the options {options} (of {info.base}).")
    if info.invariances:
        words = [INVARIANCE_WORDS.get(name, name) for name in sorted(info.invariances)]
        if info.level == "attention":
            words = ["permuting heads" if w == "permuting neurons" else w for w in words]
        sentences.append("Unchanged by " + _join(words) + ".")
    else:
        sentences.append("Not invariant to any of the transformations the registry tracks.")
    if info.convention:
        sentences.append("Convention: " + info.convention.rstrip(".") + ".")
    sentences.append(f"Reference: {info.reference.rstrip('.')}.")
    sentences.append(f"Cost: {info.cost.rstrip('.')}.")
    return Explanation(info.description, tuple(sentences))


def _join(words: Sequence[str]) -> str:
    """Join words as an English list: "a", "a or b", "a, b or c"."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def random_controls(models: Sequence[str]) -> dict[str, str | None]:
    """Find the random-weight controls among the models, and the trained model each one copies.

    A control is a model whose name has the word "random" in it (the ``<preset>-random`` presets are named
    so); its trained counterpart is the model of the same name without that word, when the table has one.

    Parameters
    ----------
    models : sequence of str
        The models of the table.

    Returns
    -------
    dict of str to str or None
        Control -> its trained counterpart (None when there is none), in model order.

    Examples
    --------
    >>> random_controls(["MiniLM", "MiniLM-random", "SmolLM2", "random-net"])
    {'MiniLM-random': 'MiniLM', 'random-net': None}
    """
    lowered = {m.lower(): m for m in models}
    controls: dict[str, str | None] = {}
    for model in models:
        if CONTROL_PATTERN.search(model) or model.lower() == "random":
            trained = CONTROL_PATTERN.sub("", model).strip("-_ .")
            controls[model] = lowered.get(trained.lower()) if trained and trained != model else None
    return controls


@dataclass(frozen=True)
class Baseline:
    """A value to read a measure against.

    Attributes
    ----------
    label : str
        What the value is, e.g. ``"MiniLM vs its random control MiniLM-random"``.
    value : float
        The value.
    note : str
        How to read it.
    """

    label: str
    value: float
    note: str


def analytic_baselines(measure: str, frame: pd.DataFrame) -> list[Baseline]:
    """The chance level or floor a measure has by construction, where it has one.

    Parameters
    ----------
    measure : str
        The measure's name or spec.
    frame : pandas.DataFrame
        The measure's rows of the results table (``n_rows`` gives the rows compared).

    Returns
    -------
    list of Baseline
        mutual_knn: chance k / (n - 1) for the rows compared; attention_js: the floor 1 - ln 2; others: none.
    """
    info = _registry_entry(measure)
    base = info.base if info is not None else measure
    if base == "mutual_knn" and len(frame):
        from reprsim.measures.knn import DEFAULT_K

        k = int(info.options.get("k", DEFAULT_K)) if info is not None else DEFAULT_K
        n = int(frame["n_rows"].min())
        if n > 1:
            return [Baseline(f"chance level k / (n - 1), k = {k}, n = {n}", k / (n - 1),
                             "what two unrelated representations score")]
    if base == "attention_js":
        return [Baseline("floor 1 - ln 2", JS_FLOOR,
                         "the lowest possible value; near-uniform attention scores high against anything, so "
                         "read it beside a random-weight control")]
    return []


def control_baselines(pair_values: Mapping[tuple[str, str], float], controls: Mapping[str, str | None]) -> list[
        Baseline]:
    """Each random control against its trained counterpart, and pairs with a control against trained pairs.

    Parameters
    ----------
    pair_values : mapping of (str, str) to float
        The symmetric model-to-model value of each unordered pair (either order as key).
    controls : mapping of str to str or None
        Control -> trained counterpart (see `random_controls`).

    Returns
    -------
    list of Baseline
        One per control with a counterpart in `pair_values`, then the mean over every pair involving a control
        (when there is one).
    """
    def value(a: str, b: str) -> float | None:
        found = pair_values.get((a, b), pair_values.get((b, a)))
        return None if found is None or not math.isfinite(found) else float(found)

    baselines = []
    for control, trained in controls.items():
        if trained is None:
            continue
        found = value(trained, control)
        if found is not None:
            baselines.append(Baseline(f"{trained} vs its random control {control}", found,
                                      "same architecture and tokenizer, untrained weights"))
    with_control = [v for (a, b), v in pair_values.items() if (a in controls or b in controls) and math.isfinite(v)]
    if with_control:
        baselines.append(Baseline(f"mean over the {len(with_control)} pairs with a random control",
                                  sum(with_control) / len(with_control),
                                  "trained pairs near this value share little beyond architecture and input"))
    return baselines
