"""Extraction: models over a corpus to word-level (or text-level) activations and attention in an ActivationStore."""

from reprsim.extraction.adapter import AdapterOutput, SentenceError, WordAdapter
from reprsim.extraction.alignment import SUBWORD_RULES, plan_windows
from reprsim.extraction.extract import extract
from reprsim.extraction.models import ModelSource, load_transformer, resolve_model
from reprsim.extraction.options import ExtractOptions
from reprsim.extraction.presets import INSTALL_COMMAND, PRESETS
from reprsim.extraction.rows import ROW_RULES
from reprsim.extraction.transformer import TransformerAdapter

__all__ = [
    "INSTALL_COMMAND",
    "PRESETS",
    "ROW_RULES",
    "SUBWORD_RULES",
    "AdapterOutput",
    "ExtractOptions",
    "ModelSource",
    "SentenceError",
    "TransformerAdapter",
    "WordAdapter",
    "extract",
    "load_transformer",
    "plan_windows",
    "resolve_model",
]
