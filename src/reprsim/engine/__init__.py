"""The streaming engine: one pass of cross-products gives every linear measure for every pair.

- `CrossMoments`: running float64 column sums and cross-product blocks of many representations over row
  chunks (mergeable across shards, extendable with new representations).
- `RepresentationStats`, `PairTerms`, `derive`: every linear measure of a pair from its blocks, with
  per-representation decompositions computed once.
- `all_pairs`: the measures for all (or chosen) pairs of `RepresentationSource`s, memory independent of n;
  `pair_results`: the same from CrossMoments accumulated by hand (merged shards, added models).
- The user-facing two-representation accumulator is `reprsim.measures.streaming.StreamingSimilarity`.
See docs/engine.md for the algebra.
"""

from reprsim.engine.derive import (
    DIRECTED_MEASURES,
    ENGINE_MEASURES,
    Directed,
    PairTerms,
    RepresentationStats,
    SvccaOptions,
    derive,
)
from reprsim.engine.moments import CrossMoments, resolve_device
from reprsim.engine.pairs import PairResult, RepresentationSource, StoredLayer, all_pairs, pair_results

__all__ = [
    "DIRECTED_MEASURES",
    "ENGINE_MEASURES",
    "CrossMoments",
    "Directed",
    "PairResult",
    "PairTerms",
    "RepresentationSource",
    "RepresentationStats",
    "StoredLayer",
    "SvccaOptions",
    "all_pairs",
    "derive",
    "pair_results",
    "resolve_device",
]
