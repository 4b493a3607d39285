"""`reprsim store list|remove`: the state of every entry, and removal by key, by name or of unfinished ones."""

from __future__ import annotations

import numpy as np

from reprsim.cli import main
from reprsim.store import ActivationStore, make_key

LENGTHS = [3, 2, 4]


def write(store: ActivationStore, name: str, variant: str = "", finish: bool = True) -> str:
    manifest = {"name": name, "model": f"model-{name}", "variant": variant}
    key = make_key(name, manifest)
    writer = store.writer(key, manifest, [0, 1], [2, 2], LENGTHS, None)
    rows = np.arange(18, dtype=np.float32).reshape(9, 2)
    writer.write_sentences(0, 2, [rows[:5], rows[:5]])
    if finish:
        writer.write_sentences(2, 3, [rows[5:], rows[5:]])
        writer.finalize()
    return key


def test_list_shows_complete_unfinished_and_damaged_entries(tmp_path, capsys):
    store = ActivationStore(tmp_path / "s")
    done = write(store, "a")
    half = write(store, "b", finish=False)
    broken = write(store, "c")
    (store.path / broken / "hidden" / "1" / "c.0.0").unlink()
    assert main(["store", "list", str(store.path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "complete" in lines[done] and "model-a" in lines[done] and " 9 " in lines[done]
    assert "unfinished (2 of 3 sentences)" in lines[half]
    assert "damaged" in lines[broken] and "c.0.0" in lines[broken]


def test_remove_by_key_by_name_and_unfinished(tmp_path, capsys):
    store = ActivationStore(tmp_path / "s")
    a = write(store, "a")
    b = write(store, "b")
    half = write(store, "h", finish=False)
    assert main(["store", "remove", str(store.path), "a", b]) == 0
    assert store.keys() == [half]
    assert main(["store", "remove", str(store.path), "--unfinished"]) == 0
    assert store.keys() == []
    assert f"removed {a}" in capsys.readouterr().out


def test_remove_refuses_ambiguous_or_unknown_names_before_removing_anything(tmp_path, capsys):
    store = ActivationStore(tmp_path / "s")
    first = write(store, "m", variant="last")
    second = write(store, "m", variant="first")
    assert main(["store", "remove", str(store.path), first, "m"]) == 1
    assert "2 entries are named 'm'" in capsys.readouterr().err
    assert main(["store", "remove", str(store.path), first, "nope"]) == 1
    assert "no entry 'nope'" in capsys.readouterr().err
    assert sorted(store.keys()) == sorted([first, second])  # nothing removed
    assert main(["store", "remove", str(store.path)]) == 1
    assert "name the entries to remove" in capsys.readouterr().err


def test_list_shows_an_entry_of_another_format_version_as_old_not_damaged(tmp_path, capsys):
    import json

    from reprsim.store import layout

    store = ActivationStore(tmp_path / "s")
    current = write(store, "new")
    old = write(store, "old")
    old_unfinished = write(store, "half", finish=False)
    for key, version in ((old, 1), (old_unfinished, None)):
        manifest = store.path / key / layout.MANIFEST
        record = json.loads(manifest.read_text())
        if version is None:
            del record["format_version"]
        else:
            record["format_version"] = version
        manifest.write_text(json.dumps(record))
    assert main(["store", "list", str(store.path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "old format (version 1): extract it again" in lines[old] and "damaged" not in lines[old]
    assert "old" in lines[old].split()[1] and "model-old" in lines[old]
    assert "old format (no version recorded): extract it again" in lines[old_unfinished]
    assert "complete" in lines[current]
