"""The report's run details: where the numbers came from, in terms a person can check and repeat.

The results table's provenance names the store, the corpus hash and each model's store entry; when the store
is still where the provenance says, each entry's manifest adds the model's source (preset, folder or hub id and
revision), the extraction options and the library versions. A store that has moved is noted, not an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from reprsim import __version__
from reprsim.report.page import esc, frame_html, note_html
from reprsim.report.significance import StatsView, stats_view
from reprsim.results import ResultTable

MANIFEST = "manifest.json"  # each store entry's metadata file (reprsim.store.layout.MANIFEST)
# Provenance keys that name the command or study file that made the table, first found wins.
COMMAND_KEYS = ("command", "study", "study_file")
CORPUS_KEYS = ("corpus", "corpus_source", "corpus_file")


def read_manifest(store: str | Path, key: str) -> dict[str, Any] | None:
    """Read one store entry's manifest record, or None when the store or entry is not there (or unreadable).

    Parameters
    ----------
    store : str or Path
        The activation store's folder.
    key : str
        The entry's key.

    Returns
    -------
    dict or None
        The parsed manifest.json.
    """
    path = Path(store) / key / MANIFEST
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _mapping(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The mapping under `key`, or an empty one when it is missing or not a mapping."""
    value = record.get(key)
    return value if isinstance(value, Mapping) else {}


def _source_text(manifest: Mapping[str, Any]) -> tuple[str, str]:
    """The model's source (spec and kind) and its pinned identity (revision or hashes) from an entry manifest."""
    inner = _mapping(manifest, "manifest")
    identity = _mapping(_mapping(_mapping(inner, "fingerprint"), "model"), "source")
    spec = str(inner.get("model", ""))
    if "preset" in identity:
        kind = f"preset {identity['preset']}" + (" (random weights)" if "random_init_seed" in identity else "")
    elif "hub_id" in identity:
        kind = f"hub {identity['hub_id']}"
    elif "folder_sha256" in identity:
        kind = f"folder {spec}"
    else:
        kind = spec or "unknown"
    pinned = ", ".join(f"{k}={v}" for k, v in sorted(identity.items()) if k not in {"preset", "hub_id"})
    return kind, pinned


def model_sources(table: ResultTable) -> pd.DataFrame:
    """Describe each model's source from the store manifests named by the table's provenance.

    Parameters
    ----------
    table : ResultTable
        The results table; its provenance's ``"store"`` and ``"entries"`` (model -> entry key) are used.

    Returns
    -------
    pandas.DataFrame
        Indexed by model (table order), with columns ``entry``, ``source``, ``pinned as`` (revision or hashes),
        ``layers``, ``dtype`` and ``versions``; "not found" where the store or entry is not there.
    """
    provenance = table.provenance
    store = provenance.get("store")
    entries = _mapping(provenance, "entries")
    rows = {}
    for model in table.models():
        key = entries.get(model)
        record = read_manifest(store, key) if isinstance(store, str) and isinstance(key, str) else None
        if record is None:
            rows[model] = {"entry": key or "not recorded", "source": "not found (store not at its recorded path)",
                           "pinned as": "", "layers": "", "dtype": "", "versions": ""}
            continue
        source, pinned = _source_text(record)
        versions = _mapping(_mapping(record, "manifest"), "versions")
        rows[model] = {
            "entry": key,
            "source": source,
            "pinned as": pinned,
            "layers": ", ".join(str(layer) for layer in record.get("layer_ids", [])),
            "dtype": str(record.get("dtype", "")),
            "versions": ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def _first(provenance: Mapping[str, Any], keys: Sequence[str]) -> Any:
    """The value of the first of `keys` present in `provenance`, or None."""
    for key in keys:
        if provenance.get(key):
            return provenance[key]
    return None


def _definition_list(items: Sequence[tuple[str, str]]) -> str:
    """Render (term, HTML) pairs as a two-column table."""
    rows = "".join(f'<tr><th class="text">{esc(term)}</th><td class="text">{value}</td></tr>' for term, value in items)
    return f'<div class="scroll"><table><tbody>{rows}</tbody></table></div>'


def run_details_html(table: ResultTable, command: str | None) -> list[str]:
    """Render the run details: what made the table and the report, the corpus, versions, options and models.

    Parameters
    ----------
    table : ResultTable
        The results table.
    command : str, optional
        The command line that made the report, when the caller knows it.

    Returns
    -------
    list of str
        HTML parts, in page order: the sources, the statistics' options and methods (when the table has an
        ``"inference"`` provenance entry or statistics), the models, and the full provenance JSON last, folded.
    """
    provenance = table.provenance
    made_by = _first(provenance, COMMAND_KEYS)
    corpus = _first(provenance, CORPUS_KEYS)
    items = [
        ("results made by", f"<code>{esc(made_by)}</code>" if made_by else
         "not recorded in the results table's provenance"),
        ("report made by", f"<code>{esc(command)}</code>" if command else "reprsim.report.write_report"),
        ("corpus", esc(corpus) if corpus else "source file not recorded (identify it by its hash)"),
        ("corpus hash", f"<code>{esc(provenance.get('corpus_hash', 'not recorded'))}</code>"),
        ("words (rows)", esc(provenance.get("n_words", "not recorded"))),
        ("store", f"<code>{esc(provenance.get('store', 'not recorded'))}</code>"),
        ("reprsim", f"results {esc(provenance.get('reprsim_version', 'not recorded'))}; report {esc(__version__)}"),
    ]
    for key in ("measures", "subsample_rows", "attention_sentences", "seed"):
        if key in provenance:
            value = provenance[key]
            items.append((key.replace("_", " "), esc(", ".join(map(str, value)) if isinstance(value, list) else value)))
    parts = ["<h3>Where the numbers come from</h3>" + _definition_list(items)]
    view = stats_view(table)
    if view is not None or table.inference:
        from reprsim.report.stats_html import inference_items

        shown = view or StatsView(table.alpha, dict(table.inference.get("options") or {}),
                                  {m: table.inference_methods(m) for m in table.measures()})
        parts.append("<h3>Statistics</h3>" + _definition_list(inference_items(shown)))
    sources = model_sources(table)
    parts.append("<h3>Models</h3>" + frame_html(sources, "model"))
    if (sources["source"].str.startswith("not found")).any():
        parts.append(note_html("Some store entries were not found at the recorded store path (moved or removed), "
                               "so their sources are not shown; the entry keys still identify them."))
    raw = json.dumps(provenance, indent=2, sort_keys=True) if provenance else "{}"
    parts.append(f"<details><summary>Full provenance (JSON)</summary><pre>{esc(raw)}</pre></details>")
    return parts
