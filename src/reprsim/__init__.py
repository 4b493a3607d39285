"""reprsim: similarity analysis of neural network representations and attention.

The flow is corpus -> extraction -> activation store -> all-pairs comparison -> results table -> analysis and
report. The top-level names are the entry points of that flow:

- `Corpus` (`reprsim.corpus`): sentences of words, with a content hash;
- `extract` (`reprsim.extraction`): word vectors and word-level attention of models over a corpus;
- `ActivationStore` (`reprsim.store`): where extracted layers live;
- `compare` (`reprsim.comparison`): every measure for every pair of stored layers;
- `ResultTable` (`reprsim.results`): the tidy results, read by `reprsim.analysis` and `reprsim.report`.

They are imported on first use, so ``import reprsim`` (and every CLI command's start-up) does not pay for
torch and transformers until a part that needs them is touched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from reprsim._version import __version__

if TYPE_CHECKING:
    from reprsim.comparison import compare
    from reprsim.corpus import Corpus
    from reprsim.extraction import extract
    from reprsim.results import ResultTable
    from reprsim.store import ActivationStore

_LAZY = {
    "Corpus": "reprsim.corpus",
    "ActivationStore": "reprsim.store",
    "extract": "reprsim.extraction",
    "compare": "reprsim.comparison",
    "ResultTable": "reprsim.results",
}

__all__ = ["ActivationStore", "Corpus", "ResultTable", "__version__", "compare", "extract"]


def __getattr__(name: str) -> Any:
    """Import a top-level name on first use (PEP 562)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'reprsim' has no attribute {name!r}")
