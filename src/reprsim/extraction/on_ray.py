"""Extraction on a Ray cluster: one actor per model, each writing its own entry into the shared store.

Each actor declares its resources (one GPU when the cluster has GPUs, else one CPU; overridable), loads its
model on the worker where it lands (``device="auto"`` there: CUDA when the worker sees a GPU, else the CPU)
and runs `reprsim.extraction.extract` for that model into the store, whose path every worker must see (a
shared POSIX file system). The driver shows one progress bar over the models.

- A worker that dies (killed, out of memory, a lost node) restarts its actor, up to
  `reprsim.ray_support.MAX_RETRIES` times, and the method runs again: it resumes the half-written entry
  from its durable prefix (whole windows committed) instead of starting over.
- Two actors of one entry cannot meet: the entry's writer lock (`reprsim.store.ActivationStore.writing`)
  makes the second wait, then reuse the entry.
- Any error in a model's extraction reaches the driver naming the model; Ctrl-C kills the actors, and what
  they committed stays in the store for the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

from reprsim.corpus import Corpus
from reprsim.ray_support import MAX_RETRIES, connect, result

__all__ = ["extract_on_ray"]


class _Extractor:
    """The actor: one model's extraction on the worker it was placed on."""

    def run(self, task: Callable[..., str], *args: Any) -> str:
        return task(*args)


def extract_on_ray(specs: Sequence[str], names: Sequence[str], corpus: Corpus, store: str,
                   arguments: Sequence[dict[str, Any]], *, address: str | None = None,
                   task: Callable[..., str], gpus_per_model: float | None = None, cpus_per_model: float = 1,
                   progress: bool = True) -> list[str]:
    """Extract each model in an actor of its own on the Ray cluster; the entries' keys.

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
        Show a progress bar over the models.
    task
        The function each actor runs: ``task(spec, name, corpus, store, arguments)`` gives the entry's key
        (`reprsim.extraction.extract.extraction_task`; tests wrap it to inject faults).

    Returns
    -------
    list of str
        The entries' keys, in the order of `specs`.

    Raises
    ------
    ValueError
        If ray is not installed (with the install command), or a model's extraction failed (naming it).
    """
    ray = connect(address)
    if gpus_per_model is None:
        gpus_per_model = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    actor_class = ray.remote(num_cpus=cpus_per_model, num_gpus=gpus_per_model, max_restarts=MAX_RETRIES,
                             max_task_retries=MAX_RETRIES)(_Extractor)
    actors = [actor_class.remote() for _ in specs]
    refs = [actor.run.remote(task, spec, name, corpus, store, kwargs)
            for actor, spec, name, kwargs in zip(actors, specs, names, arguments, strict=True)]
    labels = {ref: f"model {name!r}" for ref, name in zip(refs, names, strict=True)}
    actor_of = dict(zip(refs, actors, strict=True))
    keys: dict[Any, str] = {}
    pending = list(refs)
    try:
        with tqdm(total=len(refs), desc="models on ray", unit="model", disable=not progress) as bar:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                ray.kill(actor_of.pop(ready[0]))  # its GPU goes to the next model waiting for one
                keys[ready[0]] = result(ray, ready[0], labels[ready[0]])
                bar.update(1)
    finally:
        for actor in actor_of.values():
            ray.kill(actor)
    return [keys[ref] for ref in refs]
