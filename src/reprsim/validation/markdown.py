"""Markdown rendering of result tables (pandas' ``to_markdown`` needs the optional ``tabulate`` package)."""

from __future__ import annotations

import math
from numbers import Integral, Real

import pandas as pd


def _format_cell(value: object, digits: int) -> str:
    """Format one cell: bools as yes/no, integers as is, floats to `digits` decimals, NaN empty, rest as text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Integral):
        return str(value)
    if isinstance(value, Real):
        return "" if math.isnan(float(value)) else f"{float(value):.{digits}f}"
    return str(value).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """Render a DataFrame as a GitHub-flavoured Markdown table.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table; its index is dropped.
    digits : int, default 3
        Decimals shown for floats.

    Returns
    -------
    str
        The table, one line per row (no trailing newline). Numeric columns (not boolean ones) are
        right-aligned; booleans read yes/no, NaN is an empty cell and ``|`` in text is escaped.
    """
    header = [str(c) for c in frame.columns]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) for c in frame]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_format_cell(v, digits) for v in row) + " |")
    return "\n".join(lines)
