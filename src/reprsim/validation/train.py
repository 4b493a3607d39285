"""Small networks trained from scratch, deterministically, so that seeds are the only difference between them.

Two settings back the validation suite:

- a deep, narrow fully connected classifier on scikit-learn's digits (`reprsim.validation.train_digits`;
  Kornblith et al. 2019 used deep narrow networks because that is where CCA-type measures fail to find
  corresponding layers);
- a small pre-LayerNorm transformer language model with a word-level vocabulary, trained for next-word
  prediction on sentences of a `Corpus` (`reprsim.validation.train_lm`).

Both share the deterministic seeding and the `TrainedNetwork` record of `reprsim.validation.train_common`;
this module gathers the public names of all three.
"""

from __future__ import annotations

from reprsim.validation.train_common import TrainedNetwork, deterministic_torch
from reprsim.validation.train_digits import DigitsData, DigitsMLP, MLPConfig, load_digits_split, train_digits_mlp
from reprsim.validation.train_lm import (
    PAD_ID,
    UNK_ID,
    Block,
    LMConfig,
    LMData,
    Vocabulary,
    WordLM,
    split_lm_sentences,
    train_word_lm,
)

__all__ = [
    "PAD_ID",
    "UNK_ID",
    "Block",
    "DigitsData",
    "DigitsMLP",
    "LMConfig",
    "LMData",
    "MLPConfig",
    "TrainedNetwork",
    "Vocabulary",
    "WordLM",
    "deterministic_torch",
    "load_digits_split",
    "split_lm_sentences",
    "train_digits_mlp",
    "train_word_lm",
]
