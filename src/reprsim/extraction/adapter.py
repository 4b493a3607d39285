"""The adapter protocol: what reprsim needs from a model to analyse it, whatever the model is.

`reprsim.extract` talks to every model through this protocol. Hugging Face transformers go through
`TransformerAdapter`; any other PyTorch module (an LSTM language model, a CNN over characters, ...) can be
analysed by writing a small class with the members below. See the README section "Extraction" for an example.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


@dataclass
class AdapterOutput:
    """Word-level outputs of one batch of sentences.

    Parameters
    ----------
    hidden : sequence
        One entry per requested layer, in the order requested; each is either one array of
        (words in the batch, width) with the sentences' words concatenated in batch order, or a sequence of
        per-sentence (words, width) arrays.
    attention : sequence, optional
        None, or one entry per requested layer, each a sequence of per-sentence (heads, words, words)
        word-level maps whose rows sum to 1 (a layer without attention gives (0, words, words) arrays).
    """

    hidden: Sequence[ArrayLike | Sequence[ArrayLike]]
    attention: Sequence[Sequence[ArrayLike]] | None = None


@runtime_checkable
class WordAdapter(Protocol):
    """A model seen as a function from sentences (lists of words) to per-layer word vectors.

    Any object with these members is one (a structural protocol: no base class needed).
    """

    @property
    def layer_widths(self) -> Sequence[int]:
        """The width of each layer's word vectors; layer 0 is conventionally the input embedding."""
        ...

    @property
    def attention_heads(self) -> Sequence[int]:
        """Heads per layer (as many as layer_widths), 0 where a layer has no attention."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        """Identify the weights and every setting that changes the output.

        Returns
        -------
        dict
            JSON-able; it becomes part of the activation store key, so a changed model is never mistaken
            for a stored one.
        """
        ...

    def encode(
        self, sentences: Sequence[Sequence[str]], layers: Sequence[int], attention: bool
    ) -> AdapterOutput:
        """Compute the word vectors of some layers for a batch of sentences.

        Parameters
        ----------
        sentences : sequence of sequence of str
            The batch's sentences, as words.
        layers : sequence of int
            Layer ids, in the order the output must follow.
        attention : bool
            Also give the layers' word-level attention maps.

        Returns
        -------
        AdapterOutput
            The batch's word vectors, and its maps when asked.

        Raises
        ------
        SentenceError
            When one sentence cannot be handled (the driver names it by its corpus index).
        """
        ...


class SentenceError(ValueError):
    """An adapter could not handle one sentence of a batch.

    The extraction driver turns it into an error naming the sentence's index in the corpus.

    Parameters
    ----------
    row : int
        The sentence's index in the batch.
    reason : str
        What is wrong with it.
    """

    def __init__(self, row: int, reason: str) -> None:
        super().__init__(f"batch sentence {row}: {reason}")
        self.row = row
        self.reason = reason


FLOAT32_MAX = float(np.finfo(np.float32).max)


def to_numpy(array: ArrayLike) -> np.ndarray:
    """Convert a tensor or array to a float32 numpy array (half precision tensors are widened first).

    Parameters
    ----------
    array : numpy.ndarray or torch.Tensor
        Real values.

    Returns
    -------
    numpy.ndarray
        float32 values; it may share memory with the input when that is already float32 on the CPU.

    Raises
    ------
    ValueError
        For finite float64 values beyond float32's range (they would become infinities, reported later as
        if the model had produced them), and for complex, boolean and non-numeric values.
    """
    if isinstance(array, torch.Tensor) and (array.dtype.is_complex or array.dtype == torch.bool):
        raise ValueError(f"values of type {array.dtype}; activations must be real numbers (a float type)")
    if isinstance(array, torch.Tensor) and array.dtype != torch.float64:
        return array.detach().to(device="cpu", dtype=torch.float32).numpy()
    values = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    if values.dtype.kind not in "fiu":  # complex would lose its imaginary part, bool/object/str mean a bug
        raise ValueError(f"values of type {values.dtype}; activations must be real numbers (a float type)")
    if values.dtype == np.float64 and values.size:
        largest = float(np.abs(values[np.isfinite(values)]).max(initial=0.0))
        if largest > FLOAT32_MAX:
            raise ValueError(f"values up to {largest:.3g} exceed float32's range (the store keeps float32 or less)")
    return values.astype(np.float32, copy=False)


def stack_rows(layer_output: ArrayLike | Sequence[ArrayLike]) -> np.ndarray:
    """Stack a layer's output into one (words in batch, width) float32 array.

    Parameters
    ----------
    layer_output : array, tensor, or sequence of them
        One array of the batch's words, or per-sentence arrays.

    Returns
    -------
    numpy.ndarray
        The batch's rows.

    Raises
    ------
    ValueError
        When there are no per-sentence arrays, or values are not real numbers in float32's range.
    """
    if isinstance(layer_output, np.ndarray | torch.Tensor):
        return to_numpy(layer_output)
    parts = [to_numpy(p) for p in layer_output]
    if not parts:
        raise ValueError("adapter returned no per-sentence arrays for a layer")
    return np.concatenate(parts, axis=0)
