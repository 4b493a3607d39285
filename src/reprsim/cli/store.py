"""`reprsim store list|remove STORE`: what an activation store holds, and removing entries from it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def entry_rows(store: Any) -> list[dict[str, str]]:
    """One row per entry: key, display name, model, state (complete, unfinished k/n sentences, or damaged),
    layers, words and size on disk."""
    from reprsim.store import CorruptEntryError, layout
    from reprsim.store._files import read_json

    rows = []
    for key in store.keys():
        folder = store.path / key
        record = _manifest_record(store, key)
        if record is None:
            rows.append({"key": key, "name": "?", "model": "?", "state": "unfinished (no manifest yet)"})
            continue
        manifest = record.get("manifest", {})
        row = {
            "key": key,
            "name": _display_name(key, record),
            "model": str(manifest.get("model", "?")),
            "layers": f"{len(record['layer_ids'])}",
            "words": f"{record['n_words']:,}",
        }
        if store.has_complete(key):
            try:
                entry = store.get(key, verify=False)
                row.update(state="complete", size=f"{entry.nbytes_on_disk / 2**20:,.1f} MiB")
            except CorruptEntryError as exc:
                row["state"] = f"damaged: {exc}"
        else:
            try:
                done = int(read_json(folder / layout.PROGRESS)["done_sentences"])
            except (OSError, ValueError, KeyError, TypeError):
                done = 0
            row["state"] = f"unfinished ({done:,} of {len(record['sentence_lengths']):,} sentences)"
        rows.append(row)
    return rows


def _manifest_record(store: Any, key: str) -> dict[str, Any] | None:
    """An entry's manifest.json, or None before its writer got that far."""
    from reprsim.store import layout
    from reprsim.store._files import read_json

    try:
        return dict(read_json(store.path / key / layout.MANIFEST))
    except (OSError, ValueError):
        return None


def _display_name(key: str, record: dict[str, Any] | None) -> str:
    return "?" if record is None else str(record.get("manifest", {}).get("name", key))


def run(args: argparse.Namespace) -> int:
    from reprsim.store import ActivationStore

    store = ActivationStore(args.store, create=False)
    if args.action == "list":
        rows = entry_rows(store)
        if not rows:
            print(f"{store.path}: no entries")
            return 0
        columns = ["key", "name", "model", "state", "layers", "words", "size"]
        widths = {c: max(len(c), *(len(r.get(c, "")) for r in rows)) for c in columns}
        print("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
        for r in rows:
            print("  ".join(r.get(c, "").ljust(widths[c]) for c in columns).rstrip())
        return 0
    keys = resolve_keys(store, args.entries, args.unfinished)
    for key in keys:
        store.remove(key)
        print(f"removed {key}")
    store.clean()
    return 0


def resolve_keys(store: Any, entries: list[str], unfinished: bool) -> list[str]:
    """Keys to remove: each given key, or display name held by exactly one entry; plus every unfinished entry
    with `unfinished`. Everything is resolved before anything is removed."""
    if not entries and not unfinished:
        raise ValueError("name the entries to remove (keys or display names), or pass --unfinished")
    # Only the manifests: opening every entry (as `list` does, to report damage) is not needed to match names.
    names = {key: _display_name(key, _manifest_record(store, key)) for key in store.keys()}
    keys: list[str] = []
    for wanted in entries:
        matches = [wanted] if wanted in names else [key for key, name in names.items() if name == wanted]
        if not matches:
            raise KeyError(f"no entry {wanted!r} in store {store.path}; `reprsim store list {store.path}` shows them")
        if len(matches) > 1:
            raise ValueError(f"{len(matches)} entries are named {wanted!r} ({', '.join(matches)}); give the key")
        keys += [key for key in matches if key not in keys]
    if unfinished:
        keys += [key for key in store.incomplete() if key not in keys]
    return keys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "store",
        help="list the entries of an activation store, or remove some",
        description="List an activation store's entries (complete, unfinished or damaged), or remove entries.",
    )
    parser.add_argument("action", choices=["list", "remove"])
    parser.add_argument("store", type=Path, help="activation store directory")
    parser.add_argument("entries", nargs="*", help="remove: entry keys, or display names held by one entry")
    parser.add_argument("--unfinished", action="store_true", help="remove: also every unfinished entry")
    parser.set_defaults(func=run)
