"""Extraction on a Ray cluster: one actor per model (or per model x corpus shard), all writing into the shared store.

Each actor declares its resources (one GPU when the cluster has GPUs, else one CPU; overridable), loads its
model on the worker where it lands (``device="auto"`` there: CUDA when the worker sees a GPU, else the CPU)
and runs `reprsim.extraction.one_model.extract_one` for that model into the store, whose path every worker
must see (a shared POSIX file system). The driver shows one progress bar over the models.

- A worker that dies (killed, out of memory, a lost node) restarts its actor, up to
  `reprsim.ray_support.MAX_RETRIES` times, and the method runs again: it resumes the half-written entry
  from its durable prefix (whole windows committed) instead of starting over.
- Two actors of one entry cannot meet: the entry's writer lock (`reprsim.store.ActivationStore.writing`)
  makes the second wait, then reuse the entry.
- Any error in a model's extraction reaches the driver naming the model; Ctrl-C kills the actors, and what
  they committed stays in the store for the next run.
- With ``corpus_shards`` N > 1, each model's corpus is cut into N runs of whole windows, each extracted by an
  actor of its own into the store's part store, and a task joins the parts into the model's entry
  (`reprsim.extraction.corpus_shards`): the entry is the one a single actor writes, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

from reprsim.corpus import Corpus
from reprsim.extraction.corpus_shards import corpus_parts, join_parts, part_task
from reprsim.ray_support import MAX_RETRIES, RETRIED_EXCEPTIONS, cancel_unfinished, connect, result

__all__ = ["extract_on_ray"]


class _Extractor:
    """The actor: one model's extraction on the worker it was placed on."""

    def run(self, task: Callable[..., str], *args: Any) -> str:
        return task(*args)


def extract_on_ray(specs: Sequence[str], names: Sequence[str], corpus: Corpus, store: str,
                   arguments: Sequence[dict[str, Any]], *, address: str | None = None,
                   task: Callable[..., str], gpus_per_model: float | None = None, cpus_per_model: float = 1,
                   progress: bool = True, corpus_shards: int = 1) -> list[str]:
    """Extract each model in an actor of its own (or one per corpus shard) on the Ray cluster; the entries' keys.

    Parameters
    ----------
    specs, names
        The models, by name, and their display names.
    corpus
        The corpus.
    store
        The store's path (every worker must see it there).
    arguments
        Per model, the other keyword arguments of `reprsim.extraction.extract` (layers, subword, device,
        ...).
    address
        The Ray cluster (``ray start --head`` prints it; ``"auto"``: a running one; default: a local one).
    gpus_per_model
        GPUs each actor declares (default: 1 when the cluster has a GPU, else 0).
    cpus_per_model
        CPUs each actor declares.
    progress
        Show a progress bar over the models (over the parts and joins with corpus shards).
    task
        The function each actor runs: ``task(spec, name, corpus, store, arguments)`` gives the entry's key
        (`reprsim.extraction.one_model.extraction_task`; tests wrap it to inject faults).
    corpus_shards
        Parts of the corpus per model, each in an actor of its own, then joined into the model's entry by a
        task (`reprsim.extraction.corpus_shards`; whole windows of 256 sentences each, so at most that many).

    Returns
    -------
    list of str
        The entries' keys, in the order of `specs`.

    Raises
    ------
    ValueError
        If ray is not installed (with the install command), the corpus has fewer windows than
        `corpus_shards`, or a model's extraction failed (naming it, and the part).
    """
    parts = corpus_parts(len(corpus), corpus_shards)  # checked before any actor starts
    ray = connect(address)
    if gpus_per_model is None:
        gpus_per_model = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    actor_class = ray.remote(num_cpus=cpus_per_model, num_gpus=gpus_per_model, max_restarts=MAX_RETRIES,
                             max_task_retries=MAX_RETRIES)(_Extractor)
    join = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=RETRIED_EXCEPTIONS)(join_parts)
    shared = ray.put(corpus) if corpus_shards > 1 else corpus  # one copy for every part's actor
    labels: dict[Any, str] = {}
    actor_of: dict[Any, Any] = {}
    finals: list[Any] = []
    for spec, name, kwargs in zip(specs, names, arguments, strict=True):
        if corpus_shards == 1:
            actor = actor_class.remote()
            ref = actor.run.remote(task, spec, name, corpus, store, kwargs)
            labels[ref], actor_of[ref] = f"model {name!r}", actor
            finals.append(ref)
            continue
        part_refs = []
        for part in parts:
            actor = actor_class.remote()
            ref = actor.run.remote(part_task, spec, name, shared, store, kwargs, part)
            labels[ref], actor_of[ref] = f"model {name!r} (sentences {part[0]}..{part[1]})", actor
            part_refs.append(ref)
        ref = join.remote(spec, name, shared, store, kwargs, parts, *part_refs)
        labels[ref] = f"model {name!r} (joining its {len(parts)} corpus shards)"
        finals.append(ref)
    keys: dict[Any, str] = {}
    pending = list(labels)
    try:
        with tqdm(total=len(pending), desc="models on ray" if corpus_shards == 1 else "model parts on ray",
                  unit="model" if corpus_shards == 1 else "task", disable=not progress) as bar:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                if ready[0] in actor_of:
                    ray.kill(actor_of.pop(ready[0]))  # its GPU goes to the next model waiting for one
                keys[ready[0]] = result(ray, ready[0], labels[ready[0]])
                bar.update(1)
    except BaseException:
        # The joins; an actor's task cannot be force-cancelled: its actor is killed below.
        cancel_unfinished(ray, [ref for ref in pending if ref not in actor_of])
        raise
    finally:
        for actor in actor_of.values():
            ray.kill(actor)
    return [keys[ref] for ref in finals]
