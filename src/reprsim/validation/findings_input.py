"""The inputs of the section 3 findings, checked: a results table (or bare frame) and a design that fits it."""

from __future__ import annotations

import pandas as pd

from reprsim.results import COLUMNS, ResultTable
from reprsim.validation.findings_design import StudyDesign

# The columns a bare layer-pair frame must have; level, n_rows and subsample may be filled in.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "model_a",
    "layer_a",
    "model_b",
    "layer_b",
    "measure",
    "direction",
    "value",
)


def as_result_table(table: ResultTable | pd.DataFrame) -> ResultTable:
    """Accept a ResultTable, or a frame with at least REQUIRED_COLUMNS, as a ResultTable.

    Missing contract columns are filled: `level` from the measure registry ("attention" for attention
    measures, else "representation"), `subsample` False and `n_rows` 1 (unknown row counts; no finding here
    uses them).

    Parameters
    ----------
    table : ResultTable or pandas.DataFrame
        The results.

    Returns
    -------
    ResultTable
        `table` itself if it is one, else the completed frame as a ResultTable.

    Raises
    ------
    ValueError
        If `table` is neither a ResultTable nor a DataFrame, or the frame lacks a required column.
    """
    if isinstance(table, ResultTable):
        return table
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"expected a ResultTable or a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"results frame lacks column(s) {missing}; has {list(table.columns)}")
    frame = table.copy()
    if "level" not in frame.columns:
        frame["level"] = [_registry_level(str(m)) for m in frame["measure"]]
    if "n_rows" not in frame.columns:
        frame["n_rows"] = 1
    if "subsample" not in frame.columns:
        frame["subsample"] = False
    return ResultTable(frame[[*COLUMNS, *[c for c in frame.columns if c not in COLUMNS]]])


def _registry_level(measure: str) -> str:
    """Return "attention" for the registry's attention measures, else "representation" (unknown ones too)."""
    from reprsim import measures as registry

    try:
        return "attention" if registry.get(measure).level == "attention" else "representation"
    except KeyError:
        return "representation"


def check_design(table: ResultTable, design: StudyDesign) -> None:
    """Check that the design names only models of the table and, with families, gives each family model one.

    Parameters
    ----------
    table : ResultTable
        The results.
    design : StudyDesign
        The design to check against them.

    Raises
    ------
    KeyError
        If the design names a model the table lacks.
    ValueError
        If families are given but a family model has none.
    """
    known = set(table.models())
    named = (
        set(design.families)
        | set(design.random_controls)
        | set(design.random_controls.values())
        | set(design.finetuned)
        | set(design.finetuned.values())
    )
    unknown = sorted(named - known)
    if unknown:
        raise KeyError(f"study design names model(s) {unknown} that are not in the results table ({sorted(known)})")
    if design.families:
        without = [m for m in design.family_models(table.models()) if m not in design.families]
        if without:
            raise ValueError(f"no family given for model(s) {without}")
