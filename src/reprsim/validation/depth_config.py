"""Section 4's models, run configuration and result: which packaged models, how their rows are pooled, what ran.

`reprsim.validation.depth_alignment` runs the section; this module holds only the frozen descriptions it runs
from and returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from reprsim.extraction.presets import PRESETS
from reprsim.extraction.rows import TEXT_ROW_RULES


@dataclass(frozen=True)
class DepthModel:
    """A packaged model in section 4, and how its text-level rows are pooled.

    Attributes
    ----------
    name : str
        The display name.
    preset : str
        The extraction preset (see `reprsim.extraction.presets`).
    rows : str
        The text-level rows: "last-token", "mean" or "first-token".

    Raises
    ------
    ValueError
        If the preset is unknown or the rows are not text-level ones.
    """

    name: str
    preset: str
    rows: str

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"section 4: unknown preset {self.preset!r}; presets: {', '.join(PRESETS)}")
        if self.rows not in TEXT_ROW_RULES:
            raise ValueError(
                f"section 4: {self.name} rows must be one of {', '.join(TEXT_ROW_RULES)}, got {self.rows!r}"
            )


DEPTH_MODELS: tuple[DepthModel, ...] = (
    DepthModel("MiniLM", "minilm", "mean"),
    DepthModel("MPNet", "mpnet", "mean"),
    DepthModel("SmolLM2", "smollm2", "last-token"),
    DepthModel("Gemma3", "gemma3-270m", "last-token"),
)


@dataclass(frozen=True)
class DepthAlignmentConfig:
    """Section 4's run: which models, on how many texts, with which k and band.

    Attributes
    ----------
    models : tuple of DepthModel, default MiniLM, MPNet, SmolLM2, Gemma3
        The candidates; those whose packages are installed run (at least two must be).
    texts : int, default 500
        The first texts (sentences) of the built-in corpus, after `max_words`.
    max_words : int, default 40
        Drop longer sentences first.
    k : int, default 10
        Neighbours of mutual k-NN (the paper's 10).
    band : float, default 0.1
        Half-width of the diagonal band in relative depth: pairs with ``|depth_a - depth_b| <= band``.
    batch_size : int, default 32
        Extraction batch size.

    Raises
    ------
    ValueError
        If names repeat, k is not in 1 .. texts - 2, texts or max_words is below 1, or band is outside (0, 1).
    """

    models: tuple[DepthModel, ...] = DEPTH_MODELS
    texts: int = 500
    max_words: int = 40
    k: int = 10
    band: float = 0.1
    batch_size: int = 32

    def __post_init__(self) -> None:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"section 4: models need distinct names, got {names}")
        if self.texts < 1 or self.max_words < 1 or self.batch_size < 1:
            raise ValueError(
                f"section 4: texts, max_words and batch_size must be >= 1, got {self.texts}, {self.max_words}, "
                f"{self.batch_size}"
            )
        if not 1 <= self.k <= self.texts - 2:
            raise ValueError(f"section 4: k must be in 1 .. texts - 2 = {self.texts - 2}, got {self.k}")
        if not 0.0 < self.band < 1.0:
            raise ValueError(f"section 4: band must be in (0, 1), got {self.band}")

    @classmethod
    def preset_named(cls, preset: str) -> DepthAlignmentConfig:
        """Size section 4 by the validation preset: 500 texts for "full", 300 otherwise.

        Parameters
        ----------
        preset : str
            "full", "quick" or "smoke".

        Returns
        -------
        DepthAlignmentConfig
            The configuration.
        """
        return cls(texts=500) if preset == "full" else cls(texts=300)


@dataclass(frozen=True)
class DepthAlignmentResult:
    """What `run_depth_alignment` measured.

    Attributes
    ----------
    config : DepthAlignmentConfig
        The run's configuration.
    models : tuple of DepthModel
        The models that ran (the installed ones).
    skipped : tuple of str
        Presets not installed, left out.
    pairs : pandas.DataFrame
        Mutual k-NN of every layer pair of every two models (PAIR_COLUMNS; each unordered model pair once).
    best_matches : pandas.DataFrame
        Per ordered model pair and layer of A: A's relative depth, its best layer in B and that layer's depth.
    summary : pandas.DataFrame
        Per ordered model pair, the claim's numbers (SUMMARY_COLUMNS).
    seconds : dict of str to float
        Time of each step.
    """

    config: DepthAlignmentConfig
    models: tuple[DepthModel, ...]
    skipped: tuple[str, ...]
    pairs: pd.DataFrame
    best_matches: pd.DataFrame
    summary: pd.DataFrame
    seconds: dict[str, float]
