"""The one name of a layer of a model, shared by the engine, the results table and the report."""

from __future__ import annotations

from typing import NamedTuple


class LayerId(NamedTuple):
    """One representation: a model's display name and an integer layer index (0 = embeddings).

    Attributes
    ----------
    model
        The model's display name (its activation-store entry's name).
    layer
        The layer index: 0 is the embedding output, 1..L the blocks.
    """

    model: str
    layer: int

    def label(self) -> str:
        """Human-readable label for figures and tables (display only; never parsed back).

        Returns
        -------
        str
            ``"<model> L<layer>"``.
        """
        return f"{self.model} L{self.layer}"
