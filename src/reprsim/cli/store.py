"""`reprsim store list|remove STORE`: what an activation store holds, and removing entries from it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reprsim.cli import command_parser


def _entry_rows(store: Any) -> list[dict[str, str]]:
    """List one row per entry: key, name, model, state, layers, words and size on disk.

    The state is complete, unfinished (k of n sentences), damaged (with the reason), or of an old store
    format (which this reprsim cannot read: the entry is to be extracted again, not repaired).
    """
    from reprsim.store import CorruptEntryError, EntryFormatError, layout
    from reprsim.store._files import read_json
    from reprsim.store.entry import check_format_version

    rows = []
    for key in store.keys():
        folder = store.path / key
        record = _manifest_record(store, key)
        if record is None:
            rows.append({"key": key, "name": "?", "model": "?", "state": "unfinished (no manifest yet)"})
            continue
        try:
            check_format_version(key, record)
        except EntryFormatError:
            rows.append(_old_format_row(key, record))
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
            except EntryFormatError:
                row.update(_old_format_row(key, record))
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


def _old_format_row(key: str, record: dict[str, Any]) -> dict[str, str]:
    """Describe an entry of another store format version from what its manifest still says (fields vary)."""
    manifest = record.get("manifest")
    fields = manifest if isinstance(manifest, dict) else record
    version = record.get("format_version")
    found = f"version {version}" if version is not None else "no version recorded"
    return {
        "key": key,
        "name": str(fields.get("name", "?")),
        "model": str(fields.get("model", "?")),
        "state": f"old format ({found}): extract it again",
    }


def _manifest_record(store: Any, key: str) -> dict[str, Any] | None:
    """Read an entry's manifest.json, or return None before its writer got that far."""
    from reprsim.store import layout
    from reprsim.store._files import read_json

    try:
        return dict(read_json(store.path / key / layout.MANIFEST))
    except (OSError, ValueError):
        return None


def _display_name(key: str, record: dict[str, Any] | None) -> str:
    """Return an entry's display name from its manifest ("?" without one; the key if it names none)."""
    return "?" if record is None else str(record.get("manifest", {}).get("name", key))


def run(args: argparse.Namespace) -> int:
    """List a store's entries, or remove entries from it.

    ``list`` prints one line per entry: key, name, model, state (complete, unfinished k of n sentences, or
    damaged), layers, words and size on disk. ``remove`` takes entry keys or display names (each held by
    exactly one entry) and, with ``--unfinished``, every unfinished entry; everything is resolved before
    anything is removed.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``reprsim store`` options.

    Returns
    -------
    int
        0.

    Raises
    ------
    ValueError
        If ``remove`` names nothing (and no ``--unfinished``), a display name is held by several entries,
        or the store cannot be opened.
    KeyError
        If a key or display name matches no entry.
    FileNotFoundError
        If the store does not exist.
    """
    from reprsim.store import ActivationStore

    store = ActivationStore(args.store, create=False)
    if args.action == "list":
        rows = _entry_rows(store)
        if not rows:
            print(f"{store.path}: no entries")
            return 0
        columns = ["key", "name", "model", "state", "layers", "words", "size"]
        widths = {c: max(len(c), *(len(r.get(c, "")) for r in rows)) for c in columns}
        print("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
        for r in rows:
            print("  ".join(r.get(c, "").ljust(widths[c]) for c in columns).rstrip())
        return 0
    keys = _resolve_keys(store, args.entries, args.unfinished)
    for key in keys:
        store.remove(key)
        print(f"removed {key}")
    store.clean()
    return 0


def _resolve_keys(store: Any, entries: list[str], unfinished: bool) -> list[str]:
    """Resolve the keys to remove: given keys or single-entry display names, plus unfinished entries if asked."""
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
    """Add the ``store`` subcommand and its options to the ``reprsim`` parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The subparsers of the ``reprsim`` parser (see `reprsim.cli.build_parser`).
    """
    parser = command_parser(
        subparsers,
        "store",
        help="list the entries of an activation store, or remove some",
        description=(
            "List an activation store's entries (complete, unfinished, damaged, or of an old store format), "
            "or remove entries."
        ),
    )
    parser.add_argument(
        "action", choices=["list", "remove"], help="list: one line per entry; remove: delete the named entries"
    )
    parser.add_argument("store", type=Path, help="activation store directory")
    parser.add_argument("entries", nargs="*", help="remove: entry keys, or display names held by one entry")
    parser.add_argument("--unfinished", action="store_true", help="remove: also every unfinished entry")
    parser.set_defaults(func=run)
