"""Shard and merge: the linear measures' pass split into row shards that any scheduler can run, merged after.

- `accumulate_shard` streams shard i of N (a run of whole sentences) of every stored layer of a study into
  cross-moments and writes them to a moments file: numbers in an ``.npz`` (read without pickle) and a JSON
  record of the study (corpus, store entries, layers, measures, options) and of the shard.
- `merge_shards` checks that its files are the N shards of one study, each once, merges their moments
  (`reprsim.engine.CrossMoments.merge`, exact up to rounding), derives the linear measures, computes the
  n x n and attention measures from the store as `reprsim.compare` does, and returns the same table.

The shards hold every block (a, b), a <= b, of the study's layers, so a shard's memory is that of an
untiled pass (`shard_bytes`), unless the blocks exceed the budget (``memory_per_task``): then the study is
cut into the column tiles `reprsim.compare` would cut, and each file is one (shard, tile), its layers' own
blocks included; the merge runs compare's tiled pass with each tile's files in place of its rows. With
intervals (``ci``), a shard keeps its moments per sentence block (the statistics' blocks,
`reprsim.inference.sentence_blocks`; about G / N + 1 times the memory), a block that a shard boundary cuts is
added back by the merge, and the merged table's statistics equal `reprsim.compare`'s.
"""

from __future__ import annotations

import functools
import json
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reprsim._version import __version__
from reprsim.comparison import ComparisonPlan, finish_comparison, other_records, plan_comparison, recording_warnings
from reprsim.comparison_records import LINEAR_BUDGET_BYTES, block_bounds, linear_tiles, streamed_records
from reprsim.engine import CrossMoments, RepresentationSource
from reprsim.engine.block_moments import BlockedMoments, merge_block_parts
from reprsim.engine.linear_family import LinearFamily, pass_needs_row_norms
from reprsim.engine.moments_state import (
    block_parts_arrays,
    block_parts_from_arrays,
    moments_arrays,
    moments_from_arrays,
)
from reprsim.engine.scheduler import Tile, tile_blocks
from reprsim.inference import InferenceOptions
from reprsim.results import ResultTable
from reprsim.row_shards import Shard, shard_block_parts, shard_bytes, shard_moments, shard_rows, shard_sentences
from reprsim.store import ActivationStore

__all__ = [
    "MOMENTS_FORMAT", "Shard", "accumulate_shard", "merge_shards", "shard_bytes", "shard_moments", "shard_rows",
    "shard_sentences",
]

MOMENTS_FORMAT = "reprsim-moments"
MOMENTS_VERSION = 2  # 2: every file records its column tile and the budget that fixes the tiles
_FILE_NAME = re.compile(r"moments-\d+-of-\d+(-tile-\d+-of-\d+)?\.npz")


def _study_record(run: ComparisonPlan, budget: int = LINEAR_BUDGET_BYTES) -> dict[str, Any]:
    """What every shard of one study shares (the store's path is left out: nodes may mount it elsewhere)."""
    first = run.entries[0]
    statistics: dict[str, Any] = {"inference": run.options.as_dict()} if run.options.enabled else {}
    return {
        "corpus_hash": first.corpus_hash,
        "n_words": first.n_words,
        "n_sentences": first.n_sentences,
        "entries": {e.name: e.key for e in run.entries},
        "representations": [[r.id.model, r.id.layer, r.width] for r in run.reps],  # type: ignore[attr-defined]
        "measures": run.names,
        "subsample_rows": run.subsample_rows,
        "attention_sentences": run.attention_sentences,
        "seed": run.seed,
        "memory_per_task": budget,  # it fixes the column tiles, which every file must share
        **statistics,
    }


def _tiles(run: ComparisonPlan, budget: int) -> list[Tile]:
    """The column tiles of the study's linear pass under the budget, as `reprsim.compare` cuts them.

    Each file holds one tile, its members' own blocks included (the blocks a tile's pass with intervals keeps).
    """
    n = len(run.reps)
    return linear_tiles(run.reps, run.streamed, [(a, b) for a in range(n) for b in range(a, n)], budget, run.options)


def _plan(store: str | Path | ActivationStore, measures: Sequence[str], models: Sequence[str] | None,
          chunk_rows: int, subsample_rows: int, attention_sentences: int, seed: int,
          options: InferenceOptions) -> ComparisonPlan:
    """The study checked as `reprsim.compare` checks it, with at least one linear measure to accumulate."""
    run = plan_comparison(store, measures, models, previous=None, chunk_rows=chunk_rows,
                          subsample_rows=subsample_rows, attention_sentences=attention_sentences, seed=seed,
                          options=options, space="feature")  # the shards' moments are the feature-space pass's
    if not run.streamed:
        raise ValueError(f"none of the measures {run.names} is a linear (streamed) measure, so shards have "
                         "nothing to accumulate: run `reprsim compare` instead")
    return run


def accumulate_shard(
    store: str | Path | ActivationStore,
    shard: Shard | str,
    out: str | Path,
    measures: Sequence[str] = ("all",),
    models: Sequence[str] | None = None,
    *,
    device: str = "auto",
    chunk_rows: int = 8192,
    subsample_rows: int = 5000,
    attention_sentences: int = 500,
    seed: int = 0,
    progress: bool = True,
    ci: str = "none",
    null: str = "none",
    blocks: int = 50,
    resamples: int = 1000,
    permutations: int = 200,
    alpha: float = 0.05,
    jackknife: str = "linearised",
    tile: str | None = None,
    memory_per_task: int | None = None,
) -> Path:
    """Stream one row shard (of one column tile) of a study into a moments file that `merge_shards` combines.

    Parameters
    ----------
    store
        The activation store (a path every node sees).
    shard
        Which shard (`Shard`, or ``"i/N"``, 1-based).
    out
        The folder the file goes in (created); the file is ``moments-0000i-of-0000N.npz``, written whole
        or not at all, so a rerun after an interruption only redoes it.
    measures, models, device, chunk_rows, subsample_rows, attention_sentences, seed, progress
        As for `reprsim.compare`. The n x n and attention measures are computed by `merge_shards`; their
        options are recorded here so that every shard and the merge agree on them.
    ci, null, blocks, resamples, permutations, alpha, jackknife
        The statistics, as for `reprsim.compare` (every shard of a study must be given the same); `merge_shards`
        computes them. With intervals the shard keeps its moments per sentence block.
    tile
        ``"t/T"``: column tile t of T (1-based), when the study's blocks exceed `memory_per_task` and are cut
        into T tiles (the error says T); every (shard, tile) is one file. ``None`` for an untiled study.
    memory_per_task
        Bytes of blocks one file's pass may hold (default: `reprsim.comparison.LINEAR_BUDGET_BYTES`, 4 GiB),
        which fixes the tiles; every file of a study must be given the same.

    Returns
    -------
    Path
        The moments file.

    Raises
    ------
    ValueError
        As `reprsim.compare` (unknown measures or models, entries of different corpora), and if no measure
        is linear, the corpus has fewer sentences than shards or than sentence blocks, or a statistics option
        is bad.
    """
    shard = Shard.parse(shard) if isinstance(shard, str) else shard
    options = InferenceOptions(ci=ci, null=null, blocks=blocks, resamples=resamples, permutations=permutations,
                               alpha=alpha, seed=seed, jackknife=jackknife)
    run = _plan(store, measures, models, chunk_rows, subsample_rows, attention_sentences, seed, options)
    lengths = run.entries[0].sentence_lengths
    sentences = shard_sentences(lengths, shard)
    rows = shard_rows(lengths, shard)
    row_norms = pass_needs_row_norms(run.streamed, options)
    bounds = block_bounds(lengths, options)
    budget = _budget(memory_per_task)
    tiles = _tiles(run, budget)
    which = _which_tile(tile, len(tiles), budget)
    chosen = tiles[which.index - 1]
    members, blocks_of_tile = list(chosen.members), tile_blocks(chosen)
    label = f"shard {shard}" + (f", tile {which}" if which.count > 1 else "")
    if bounds is None:
        arrays = moments_arrays(shard_moments(run.entries, rows, row_norms=row_norms, members=members,
                                              blocks=blocks_of_tile, device=device, chunk_rows=chunk_rows,
                                              progress=progress, description=label))
    else:
        arrays = block_parts_arrays(shard_block_parts(run.entries, rows, bounds, row_norms=row_norms, members=members,
                                                      blocks=blocks_of_tile, device=device, chunk_rows=chunk_rows,
                                                      progress=progress, description=label))
    record = {
        "format": MOMENTS_FORMAT,
        "version": MOMENTS_VERSION,
        "reprsim_version": __version__,
        "study": _study_record(run, budget),
        "shard": [shard.index, shard.count],
        "tile": [which.index, which.count],
        "sentences": list(sentences),
        "rows": list(rows),
        "store": str(run.store.path.resolve()),
    }
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    name = shard.file_name if which.count == 1 else shard.file_name.replace(
        ".npz", f"-tile-{which.index:05d}-of-{which.count:05d}.npz")
    path = folder / name
    partial = folder / f".{name}.{os.getpid()}.partial"
    try:
        with open(partial, "wb") as f:
            np.savez(f, allow_pickle=False, record=np.asarray(json.dumps(record)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _budget(memory_per_task: int | None) -> int:
    """The bytes of blocks per file's pass, checked."""
    budget = LINEAR_BUDGET_BYTES if memory_per_task is None else memory_per_task
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"memory_per_task must be a positive number of bytes, got {memory_per_task!r}")
    return budget


def _which_tile(tile: str | None, count: int, budget: int) -> Shard:
    """The tile a file holds (`Shard` numbering: t of T), checked against the study's T tiles."""
    if tile is None:
        if count > 1:
            raise ValueError(f"the study's blocks need {count} column tiles under --memory-per-task "
                             f"{budget / 2**20:,.0f} MiB: give each job --tile t/{count} as well (t = 1..{count}; "
                             "`reprsim compare --plan` shows the tiles), or a larger --memory-per-task")
        return Shard(1, 1)
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", tile)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ValueError(f"--tile {tile!r}: write it as t/T, e.g. 2/6 (column tile 2 of 6, counted from 1)")
    which = Shard(int(match.group(1)), int(match.group(2)))
    if which.count != count:
        raise ValueError(f"--tile {tile}: the study has {count} column tile(s) under --memory-per-task "
                         f"{budget / 2**20:,.0f} MiB, not {which.count}")
    return which


@dataclass
class _ShardFile:
    """One moments file: its record, read and checked for format; its arrays are read when merged."""

    path: Path
    record: dict[str, Any]

    @property
    def shard(self) -> Shard:
        return Shard(*self.record["shard"])

    @property
    def tile(self) -> Shard:
        return Shard(*self.record.get("tile", [1, 1]))

    def arrays(self) -> dict[str, np.ndarray]:
        """The file's moments arrays (never unpickled); read one tile's files at a time, not all at once."""
        try:
            with np.load(self.path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files if k != "record"}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(f"{self.path}: not a readable moments file ({exc})") from exc


def _read(path: Path) -> _ShardFile:
    """A moments file's record (never unpickled), or an error naming the file."""
    try:
        with np.load(path, allow_pickle=False) as data:
            raw = data["record"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path}: not a readable moments file ({exc})") from exc
    try:
        record = json.loads(str(raw))
        if record.get("format") != MOMENTS_FORMAT:
            raise ValueError("it is not a reprsim moments file")
        if record.get("version") != MOMENTS_VERSION:
            raise ValueError(f"moments format version {record.get('version')!r}; this reprsim reads "
                             f"{MOMENTS_VERSION}: accumulate it again with this version")
        Shard(*record["shard"])
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return _ShardFile(path, record)


def _files(paths: Sequence[str | Path]) -> list[Path]:
    """The moments files named, a folder standing for the moments files in it; each file once."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if _FILE_NAME.fullmatch(f.name))
            if not found:
                raise ValueError(f"{p}: the folder holds no moments files (moments-*-of-*.npz)")
            files += found
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such moments file or folder")
    seen: dict[Path, Path] = {}
    for f in files:
        if f.resolve() in seen:
            raise ValueError(f"{f} is given twice (also as {seen[f.resolve()]}): merge each shard once")
        seen[f.resolve()] = f
    if not files:
        raise ValueError("no moments files to merge")
    return files


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_one_study(shards: Sequence[_ShardFile]) -> tuple[int, int]:
    """That the files are every (shard, tile) of one study, each once; the shard and tile counts."""
    first = shards[0]
    for other in shards[1:]:
        if other.shard.count != first.shard.count:
            raise ValueError(f"{first.path} is shard {first.shard} but {other.path} is shard {other.shard}: "
                             "they come from splits into different numbers of shards")
        if other.tile.count != first.tile.count:
            raise ValueError(f"{first.path} is column tile {first.tile} but {other.path} is tile {other.tile}: "
                             "they come from different --memory-per-task")
        mine_study, their_study = first.record["study"], other.record["study"]
        for key in [*mine_study, *(k for k in their_study if k not in mine_study)]:
            value, theirs = mine_study.get(key), their_study.get(key)
            if theirs != value:
                raise ValueError(f"{first.path} and {other.path} are shards of different studies: their {key} "
                                 f"differ ({_short(value)} vs {_short(theirs)})")
    count, tiles = first.shard.count, first.tile.count

    def name(s: _ShardFile) -> str:
        return f"shard {s.shard}" + (f" of tile {s.tile}" if tiles > 1 else "")

    by_key: dict[tuple[int, int], _ShardFile] = {}
    for s in shards:
        key = (s.shard.index, s.tile.index)
        if key in by_key:
            raise ValueError(f"{by_key[key].path} and {s.path} are both {name(s)}: merge each shard once")
        by_key[key] = s
    missing = [f"{i}/{count}" + (f" of tile {t}/{tiles}" if tiles > 1 else "")
               for t in range(1, tiles + 1) for i in range(1, count + 1) if (i, t) not in by_key]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise ValueError(f"shards {shown} are missing (have {len(shards)} of {count * tiles}): accumulate them, "
                         "or merge the folder that holds them too")
    return count, tiles


def _check_store(run: ComparisonPlan, study: dict[str, Any], shards: Sequence[_ShardFile]) -> None:
    """That the store still holds the entries, layers and sentences the shards were accumulated from."""
    now = _study_record(run, study["memory_per_task"])  # its entries are the shards' keys, checked by merge_shards
    if now != study:
        differs = next(k for k in [*study, *now] if now.get(k) != study.get(k))
        raise ValueError(f"the store {run.store.path} no longer matches the shards: its {differs} is "
                         f"{_short(now.get(differs))}, the shards' {_short(study.get(differs))}")
    lengths = run.entries[0].sentence_lengths
    for s in shards:
        if list(shard_rows(lengths, s.shard)) != s.record["rows"]:
            raise ValueError(f"{s.path}: shard {s.shard} holds rows {s.record['rows']}, not the rows "
                             f"{list(shard_rows(lengths, s.shard))} this reprsim assigns it")


def _check_arrays(shard: _ShardFile, moments: Sequence[CrossMoments], widths: Sequence[int]) -> None:
    """That a file's moments hold the study's layers and exactly the shard's rows, as its record says."""
    start, stop = shard.record["rows"]
    if any(m.widths != list(widths) for m in moments):
        raise ValueError(f"{shard.path}: its moments hold layers of widths {moments[0].widths}, not the study's "
                         f"{list(widths)}: the file is damaged")
    rows = sum(m.n_rows() for m in moments)
    if rows != stop - start:
        raise ValueError(f"{shard.path}: its moments hold {rows} rows, not the {stop - start} of shard {shard.shard} "
                         f"(rows {start}..{stop}): the file is damaged")


def merge_shards(
    paths: Sequence[str | Path],
    *,
    store: str | Path | ActivationStore | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> ResultTable:
    """Merge the moments files of one study and derive its table, equal to `reprsim.compare`'s.

    Parameters
    ----------
    paths
        Moments files, or folders of them (``moments-*-of-*.npz``): every shard of one study, each once.
    store
        The activation store (default: the one the first shard names), for the n x n and attention measures,
        and to check that its entries are still the shards'.
    device
        Where the merged moments and the derivations live.
    progress
        Show progress bars.

    Returns
    -------
    ResultTable
        The study's table; its provenance also records ``"shards": N``.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    ValueError
        Naming the files: a file is unreadable or not a moments file, given twice, or two files are the same
        shard; the files come from different studies (naming what differs), stores, corpora or shard counts;
        a shard is missing; or the store no longer holds the entries the shards were accumulated from.
    """
    shards = [_read(p) for p in _files(paths)]
    count, tile_count = _check_one_study(shards)
    shards.sort(key=lambda s: (s.tile.index, s.shard.index))
    study = shards[0].record["study"]
    where = store if store is not None else shards[0].record["store"]
    opened = where if isinstance(where, ActivationStore) else ActivationStore(where, create=False)
    for name, key in study["entries"].items():
        if not opened.has_complete(key):
            now = [e.key for e in opened.entries() if e.name == name]
            raise ValueError(f"the shards were accumulated from store entry {key!r} of model {name!r}, but the "
                             f"store {opened.path} now holds {', '.join(map(repr, now)) or 'no such entry'}: "
                             "accumulate again")
    options = InferenceOptions(**study.get("inference", {}))
    run = _plan(opened, study["measures"], list(study["entries"].values()), 8192, study["subsample_rows"],
                study["attention_sentences"], study["seed"], options)
    _check_store(run, study, shards)
    tiles = _tiles(run, study["memory_per_task"])
    if len(tiles) != tile_count:
        raise ValueError(f"{shards[0].path}: the shards hold {tile_count} column tile(s), but this reprsim cuts the "
                         f"study into {len(tiles)}: accumulate again with this version")
    files = {tile.members: [s for s in shards if s.tile.index == t] for t, tile in enumerate(tiles, start=1)}
    family = functools.partial(_FilesFamily, files=files, widths=[int(w) for _, _, w in study["representations"]])
    with recording_warnings(run.streamed, run.raised):
        records = streamed_records(run.reps, run.streamed, run.done, device, 8192, progress, options,
                                   block_bounds(run.entries[0].sentence_lengths, options), family=family,
                                   budget=study["memory_per_task"], precision="float64")
    return finish_comparison(run, records + other_records(run, progress, device=device,
                                                          budget=study["memory_per_task"]), shards=count,
                              **({"linear_precision": "float64"} if run.streamed else {}))


class _FilesFamily(LinearFamily):
    """The linear family whose pass over a tile merges that tile's moments files instead of reading rows.

    The tiles are those `accumulate_shard` cut (the same plan under the same budget), so the local family's
    tiling, fit reuse, derivations and warnings serve the merge unchanged.
    """

    def __init__(self, sources: Sequence[RepresentationSource], measures: Sequence[str], *,
                 files: dict[tuple[int, ...], list[_ShardFile]], widths: Sequence[int], **options: Any) -> None:
        super().__init__(sources, measures, **options)
        self.files, self.widths = files, list(widths)

    def _tile_files(self, members: Sequence[int]) -> tuple[list[_ShardFile], list[int]]:
        """The tile's files and its members' widths."""
        key = tuple(members)
        assert key in self.files, f"the merge's tile {key} is not one the shards were accumulated for"
        return self.files[key], [self.widths[m] for m in members]

    def _pass(self, members: Sequence[int], blocks: Sequence[tuple[int, int]]) -> CrossMoments:
        """The tile's moments over every shard."""
        moments = _merged(*self._tile_files(members), None, self.device)
        assert isinstance(moments, CrossMoments)
        return moments

    def _blocked_pass(self, members: Sequence[int], blocks: Sequence[tuple[int, int]]) -> BlockedMoments:
        """The tile's moments per sentence block over every shard."""
        assert self.bounds is not None
        moments = _merged(*self._tile_files(members), self.bounds, self.device)
        assert isinstance(moments, BlockedMoments)
        return moments


def _merged(shards: Sequence[_ShardFile], widths: Sequence[int], bounds: np.ndarray | None,
            device: str | torch.device) -> CrossMoments | BlockedMoments:
    """One tile's moments over every shard (per sentence block with `bounds`), each file checked."""
    if bounds is None:
        total: CrossMoments | None = None
        for s in shards:
            moments = moments_from_arrays(s.arrays(), device=device, what=str(s.path))
            _check_arrays(s, [moments], widths)
            total = moments if total is None else total.merge(moments)
        assert total is not None
        return total
    parts: dict[int, CrossMoments] = {}
    for s in shards:
        own = block_parts_from_arrays(s.arrays(), device=device, what=str(s.path))
        _check_arrays(s, list(own.values()), widths)
        merge_block_parts(parts, own)
    return BlockedMoments.from_parts(parts, bounds, what=", ".join(str(s.path) for s in shards[:3])
                                     + (", ..." if len(shards) > 3 else ""))
