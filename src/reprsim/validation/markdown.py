"""Markdown rendering of result tables (pandas' to_markdown needs the optional `tabulate` package)."""

from __future__ import annotations

import math
from numbers import Integral, Real

import pandas as pd


def format_cell(value: object, digits: int) -> str:
    """Integers as is, floats with `digits` decimals, NaN as an empty cell, the rest as str()."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Integral):
        return str(value)
    if isinstance(value, Real):
        return "" if math.isnan(float(value)) else f"{float(value):.{digits}f}"
    return str(value).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table of `frame` (index dropped); numbers right-aligned."""
    header = [str(c) for c in frame.columns]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) for c in frame]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(format_cell(v, digits) for v in row) + " |")
    return "\n".join(lines)
