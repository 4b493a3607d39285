"""What the validation's training shares: deterministic seeding and the record of a trained network.

Training runs on CPU with deterministic algorithms, a fixed thread count and a forked global RNG, so a
seed fully determines the weights (the test suite checks bit-identity) and the caller's RNG state is left
as it was. Representations are each layer's activations on held-out inputs, one row per example (digits)
or per word (LM).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch


@contextmanager
def deterministic_torch(seed: int, threads: int) -> Iterator[None]:
    """Seed torch and make every CPU kernel deterministic for the duration of the block.

    The global RNG is forked (restored on exit) and the deterministic-algorithms flag and thread count are put
    back, so training one network never changes what the caller's code does afterwards.

    Parameters
    ----------
    seed : int
        The torch seed inside the block.
    threads : int
        The torch CPU thread count inside the block (at least 1); a fixed count keeps reductions
        reproducible.

    Yields
    ------
    None
        Control, inside the block.

    Raises
    ------
    ValueError
        If `threads` < 1.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    old_threads = torch.get_num_threads()
    old_deterministic = torch.are_deterministic_algorithms_enabled()
    old_fill = torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
        # Deterministic mode also NaN-fills every new tensor, a debugging aid that costs ~10% of training
        # time here; no kernel used here reads memory it did not write, so it is switched off.
        torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
        try:
            yield
        finally:
            torch.utils.deterministic.fill_uninitialized_memory = old_fill  # type: ignore[attr-defined]
            torch.use_deterministic_algorithms(old_deterministic)
            torch.set_num_threads(old_threads)


@dataclass(frozen=True)
class TrainedNetwork:
    """One trained network and its layers' activations on the held-out inputs.

    Attributes
    ----------
    setting : str
        The setting that labels it in results tables (e.g. ``"digits-mlp"``).
    seed : int
        The seed that set its initial weights and minibatch order.
    layers : list of numpy.ndarray
        ``layers[k]`` is an (examples or words) x width float32 matrix; row r is the same input in every
        network of a setting, so layers of different seeds are row-aligned.
    layer_ids : list of int
        The index of each layer (1..L for the MLP's hidden layers, 0..L for the LM, 0 = embeddings).
    metric_name : str
        What `metric` is (``"test accuracy"`` or ``"held-out perplexity"``).
    metric : float
        The trained network's held-out score.
    state : dict of str to torch.Tensor
        A copy of the trained weights (``state_dict``).
    """

    setting: str
    seed: int
    layers: list[np.ndarray]
    layer_ids: list[int]
    metric_name: str
    metric: float
    state: dict[str, torch.Tensor]
