"""Extract your own model through the adapter protocol: a word-level LSTM language model (ELMo-like).

Anything with `layer_widths`, `attention_heads`, `fingerprint()` and `encode(sentences, layers, attention)` can
be extracted into an activation store and compared with any other model there. Run it in an empty folder:
it writes the store `acts/`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch

from reprsim.corpus import Corpus
from reprsim.extraction import AdapterOutput, extract


class LSTMLanguageModel(torch.nn.Module):
    """Word embeddings followed by a stack of LSTM layers.

    Parameters
    ----------
    vocabulary
        The known words; any other word maps to index 0.
    width
        Width of the embeddings and of every LSTM layer.
    n_layers
        Number of LSTM layers.
    """

    def __init__(self, vocabulary: Sequence[str], width: int = 64, n_layers: int = 2) -> None:
        super().__init__()
        self.index = {word: i + 1 for i, word in enumerate(vocabulary)}
        self.embed = torch.nn.Embedding(len(vocabulary) + 1, width)
        self.lstms = torch.nn.ModuleList(torch.nn.LSTM(width, width, batch_first=True) for _ in range(n_layers))


class LSTMAdapter:
    """The LSTM seen by reprsim: layer 0 is the embeddings, layer k the output of LSTM layer k.

    Parameters
    ----------
    model
        The language model to extract.
    """

    name = "lstm"  # the entry's display name unless extract(names=...) gives another

    def __init__(self, model: LSTMLanguageModel) -> None:
        self.model = model.eval()

    @property
    def layer_widths(self) -> list[int]:
        """Width of each layer's word vectors, embeddings first."""
        return [self.model.embed.embedding_dim] * (1 + len(self.model.lstms))

    @property
    def attention_heads(self) -> list[int]:
        """Attention heads per layer: none anywhere."""
        return [0] * len(self.layer_widths)

    def fingerprint(self) -> dict[str, Any]:
        """Anything JSON-able that identifies the weights: it becomes part of the store key."""
        digest = hashlib.sha256()
        for tensor in self.model.state_dict().values():
            digest.update(tensor.detach().cpu().numpy().tobytes())
        return {"weights_sha256": digest.hexdigest()}

    def encode(self, sentences: Sequence[Sequence[str]], layers: Sequence[int], attention: bool) -> AdapterOutput:
        """Per requested layer, one (words, width) tensor per sentence, in the order given."""
        per_layer: list[list[torch.Tensor]] = [[] for _ in layers]
        with torch.inference_mode():
            for words in sentences:
                ids = torch.tensor([[self.model.index.get(word, 0) for word in words]])
                outputs = [self.model.embed(ids)]
                for lstm in self.model.lstms:
                    outputs.append(lstm(outputs[-1])[0])
                for k, layer in enumerate(layers):
                    per_layer[k].append(outputs[layer][0])
        return AdapterOutput(hidden=per_layer)  # attention=None: the model has no maps


def main() -> None:
    """Extract a randomly initialised LSTM over 50 built-in sentences and read a few rows back."""
    torch.manual_seed(0)
    corpus = Corpus.builtin(n=50)
    model = LSTMLanguageModel(sorted({word for sentence in corpus.sentences for word in sentence}))
    (entry,) = extract(LSTMAdapter(model), corpus, "acts", progress=False)
    print(entry.name, entry.layer_ids, entry.n_words, entry.read_rows(2, 0, 3).shape)
    assert entry.layer_ids == [0, 1, 2] and not entry.has_attention


if __name__ == "__main__":
    main()
