"""Warnings raised while a results table was computed, as its provenance keeps them for the report.

`reprsim.comparison.compare` records each reprsim warning raised while computing a measure as
``provenance["warnings"]``: a list of ``{"category", "message", "measure"}`` records, one per measure
concerned. The report shows each measure's records in its section, and any concerning no measure of the table
in the summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def recorded_warnings(provenance: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Read the warning records of a table's provenance, skipping malformed ones.

    Parameters
    ----------
    provenance : mapping
        A results table's provenance; its ``"warnings"`` key (when present) lists records, and a table
        stacked from parts (``"parts"``) contributes every part's records.

    Returns
    -------
    list of dict
        Records with a string ``category`` and ``message`` and a string or None ``measure``, in order,
        repeated ones once.

    Examples
    --------
    >>> recorded_warnings({"warnings": [{"category": "FewRowsWarning", "message": "n=100", "measure": "svcca"},
    ...                                 {"message": "no category"}]})
    [{'category': 'FewRowsWarning', 'message': 'n=100', 'measure': 'svcca'}]
    """
    parts = provenance.get("parts")
    sources = [provenance, *[p for p in parts if isinstance(p, Mapping)]] if isinstance(parts, list) else [provenance]
    records: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str | None]] = set()
    for source in sources:
        entries = source.get("warnings")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, Mapping):
                continue
            category, message, measure = entry.get("category"), entry.get("message"), entry.get("measure")
            if not isinstance(category, str) or not isinstance(message, str):
                continue
            measure = measure if isinstance(measure, str) else None
            if (category, message, measure) not in seen:
                seen.add((category, message, measure))
                records.append({"category": category, "message": message, "measure": measure})
    return records
