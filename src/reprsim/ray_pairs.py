"""The n x n and attention measures of a comparison on a Ray cluster: a task per fit, a task per group of pairs.

`RayMemberFamily` runs a family whose fits are per representation (`reprsim.engine.scheduler.MemberFamily`:
`SampleFamily`, `AttentionFamily`) under the one scheduler, tile by tile as the local family runs, but:

- each representation of a tile is fitted by a Ray task of its own (`fit_member`), once for the tiles that
  share it, and the fit stays in Ray's object store, not on the driver;
- the tile's pairs are cut into groups of consecutive pairs, one task each (as many as the cluster has CPUs),
  which takes the fits its pairs need (`hold`) and scores them, statistics included;
- the driver gathers the groups in pair order, so the table does not depend on which task finished first.

Each worker builds its own family from the store's path and the entries' keys (`sample_family_on_worker`,
`attention_family_on_worker`), so only names and row indices travel. Retries, named errors and Ctrl-C are
those of `reprsim.ray_compare`; the warnings a task raises are raised again on the driver, so that the table
records them as a local run does. Only this module and `reprsim.ray_compare` import ray, and only when the Ray
backend is asked for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from reprsim.engine import AttentionFamily, RepresentationSource, SampleFamily
from reprsim.engine.attention_family import AttentionSource
from reprsim.engine.scheduler import MemberFamily, PairScore, Tile
from reprsim.inference import NO_INFERENCE, InferenceOptions
from reprsim.ray_support import (
    MAX_RETRIES,
    RETRIED_EXCEPTIONS,
    checked_memory,
    connect,
    consecutive_groups,
    gathered,
    recording_warnings_of,
)

__all__ = [
    "RayMemberFamily", "attention_family_on_worker", "ray_attention_family", "ray_sample_family",
    "sample_family_on_worker",
]


def sample_family_on_worker(store: str, keys: Sequence[str], measure: str, rows: np.ndarray, chunk_rows: int,
                            inference: InferenceOptions = NO_INFERENCE,
                            sentence_of_row: np.ndarray | None = None) -> SampleFamily:
    """The n x n family of a comparison, built on a worker from the store's path and the entries' keys.

    Parameters
    ----------
    store
        The store's path, as the workers see it.
    keys
        The entries' keys, in the study's order.
    measure, rows, chunk_rows, inference, sentence_of_row
        As for `reprsim.engine.SampleFamily`.

    Returns
    -------
    SampleFamily
        The family, with no fits yet.
    """
    from reprsim.comparison_entries import representations, select_entries
    from reprsim.store import ActivationStore

    entries = select_entries(ActivationStore(store, create=False), list(keys))
    return SampleFamily(representations(entries), measure, rows, chunk_rows, inference=inference,
                        sentence_of_row=sentence_of_row)


def attention_family_on_worker(store: str, keys: Sequence[str], measure: str, sentences: np.ndarray,
                               lengths: Sequence[int], inference: InferenceOptions = NO_INFERENCE) -> AttentionFamily:
    """The attention family of a comparison, built on a worker from the store's path and the entries' keys.

    Parameters
    ----------
    store, keys
        As for `sample_family_on_worker`.
    measure, sentences, lengths, inference
        As for `reprsim.engine.AttentionFamily`.

    Returns
    -------
    AttentionFamily
        The family, with no fits yet.
    """
    from reprsim.comparison_entries import attention_layers, select_entries
    from reprsim.store import ActivationStore

    entries = select_entries(ActivationStore(store, create=False), list(keys))
    return AttentionFamily(attention_layers(entries), measure, sentences, lengths, inference)


def _fit_task(make: Callable[[], MemberFamily], item: int) -> tuple[Any, list[tuple[type[Warning], str]]]:
    """One representation's fit (a task), with the warnings it raised."""
    return recording_warnings_of(lambda: make().fit_member(item))


def _score_task(make: Callable[[], MemberFamily], members: Sequence[int], pairs: Sequence[tuple[int, int]],
                *fits: tuple[Any, list[tuple[type[Warning], str]]]) -> tuple[list[PairScore], list[Any]]:
    """One group of pairs scored from its members' fits (a task; Ray resolves them), with the warnings raised."""
    family = make()
    family.hold({k: fit for k, (fit, _) in zip(members, fits, strict=True)})
    scored, caught = recording_warnings_of(
        lambda: [(a, b, dict(values)) for a, b, values in family.score(Tile(tuple(members), tuple(pairs)))])
    return scored, [w for _, fit_warnings in fits for w in fit_warnings] + caught


class RayMemberFamily:
    """A family with per-representation fits whose fits and pair scores run as Ray tasks.

    Parameters
    ----------
    local
        The family as the driver would run it: it sizes the tiles (`fit_bytes`, `pair_bytes`) and fits nothing.
    make
        Builds the same family on a worker (picklable: `sample_family_on_worker` or
        `attention_family_on_worker` with their arguments bound).
    address
        The Ray cluster's address (as for `reprsim.compare`).
    label
        How errors name the work (the measure).
    groups
        Groups of pairs per tile, one task each (default: the cluster's CPUs).

    Attributes
    ----------
    fitted
        Fit tasks submitted (a representation shared by later tiles counts once).
    """

    def __init__(self, local: MemberFamily, make: Callable[[], MemberFamily], *, address: str | None, label: str,
                 groups: int | None = None) -> None:
        self.local, self.make, self.label = local, make, label
        self.ray = connect(address)
        self.groups = groups or max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        options: dict[str, Any] = {"max_retries": MAX_RETRIES, "retry_exceptions": RETRIED_EXCEPTIONS}
        self._fit = self.ray.remote(**options)(_fit_task)
        self._score = self.ray.remote(**options)(_score_task)
        self._refs: dict[int, Any] = {}
        self.fitted = 0

    def fit_bytes(self, item: int) -> int:
        """As the local family's."""
        return self.local.fit_bytes(item)

    def pair_bytes(self, a: int, b: int) -> int:
        """As the local family's."""
        return self.local.pair_bytes(a, b)

    def fit(self, tile: Tile) -> None:
        """Submit a fit task for each member of the tile without one; drop the fits the tile does not use."""
        refs = {k: self._refs[k] for k in tile.members if k in self._refs}
        for k in tile.members:
            if k not in refs:
                memory = checked_memory(self.ray, 2 * self.local.fit_bytes(k), f"the fit of {self.label}'s layer {k}")
                refs[k] = self._fit.options(memory=memory).remote(self.make, k)
                self.fitted += 1
        self._refs = refs

    def score(self, tile: Tile) -> Iterator[PairScore]:
        """The tile's pairs, scored by one task per group of consecutive pairs, in the tile's order."""
        pairs = list(tile.pairs)
        tasks = []
        for start, group in consecutive_groups(pairs, self.groups):
            members = sorted({k for p in group for k in p})
            label = f"{self.label} pairs {start + 1}..{start + len(group)} of {len(pairs)}"
            memory = checked_memory(self.ray, sum(self.local.fit_bytes(k) for k in members), label)
            ref = self._score.options(memory=memory).remote(self.make, members, group,
                                                            *(self._refs[k] for k in members))
            tasks.append((ref, label))
        for group_scores in gathered(self.ray, tasks, also_cancel=list(self._refs.values())):
            yield from group_scores


def ray_sample_family(reps: Sequence[RepresentationSource], measure: str, rows: np.ndarray, chunk_rows: int, *,
                      store: str, keys: Sequence[str], address: str | None, **options: Any) -> RayMemberFamily:
    """`reprsim.engine.SampleFamily` on Ray (what `reprsim.comparison_records.subsampled_records` takes).

    Parameters
    ----------
    reps, measure, rows, chunk_rows, **options
        As for `SampleFamily` (``inference``, ``sentence_of_row``).
    store, keys
        The store's path as the workers see it, and the entries' keys in the study's order.
    address
        The Ray cluster's address.

    Returns
    -------
    RayMemberFamily
        The family on Ray.
    """
    local = SampleFamily(reps, measure, rows, chunk_rows, **options)
    make = functools.partial(sample_family_on_worker, store, list(keys), measure, rows, chunk_rows, **options)
    return RayMemberFamily(local, make, address=address, label=measure)


def ray_attention_family(layers: Sequence[AttentionSource], measure: str, sentences: np.ndarray,
                         lengths: Sequence[int], inference: InferenceOptions = NO_INFERENCE, *, store: str,
                         keys: Sequence[str], address: str | None) -> RayMemberFamily:
    """`reprsim.engine.AttentionFamily` on Ray (what `reprsim.comparison_records.attention_records` takes).

    Parameters
    ----------
    layers, measure, sentences, lengths, inference
        As for `AttentionFamily`.
    store, keys, address
        As for `ray_sample_family`.

    Returns
    -------
    RayMemberFamily
        The family on Ray.
    """
    local = AttentionFamily(layers, measure, sentences, lengths, inference)
    make = functools.partial(attention_family_on_worker, store, list(keys), measure, sentences, list(lengths),
                             inference)
    return RayMemberFamily(local, make, address=address, label=measure)
