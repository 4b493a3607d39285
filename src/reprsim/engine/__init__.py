"""The all-pairs engine: fit each representation once, then score every pair, under a memory budget.

- `CrossMoments`: running float64 column sums and cross-product blocks of many representations over row
  chunks (mergeable across shards, extendable with new representations).
- `LinearFit`, `PairTerms`, `derive`: every linear measure of a pair (`ENGINE_MEASURES`; the directed ones,
  `DIRECTED_MEASURES`, give a `Directed`) from its blocks, with the per-representation decompositions
  computed once; `SvccaOptions` holds SVCCA's options.
- `all_pairs`: the linear measures for all (or chosen) pairs of `RepresentationSource`s, memory independent
  of n; `pair_results`: the same from CrossMoments accumulated by hand (merged shards, added models). Both
  return one `PairResult` per pair.
- `StreamingSimilarity`: the two-representation accumulator.
- `PairFamily`, `score_pairs`, `plan_tiles`, `Tile`: the fit-once protocol and its one scheduler, which also
  drives the n x n measures (`SampleFamily`) and the attention measures (`AttentionFamily`, over
  `AttentionSource`s) as well as the linear ones (`LinearFamily`) and cross-validated linear predictivity
  (`FoldFamily`, moments per fold of whole sentences).
- `resolve_device`: ``"auto"`` / ``"cpu"`` / ``"cuda"`` to a torch device, checked.
"""

from reprsim.engine.families import AttentionFamily, LinearFamily, SampleFamily
from reprsim.engine.fold_family import FoldFamily
from reprsim.engine.folds import FoldMoments
from reprsim.engine.linear_fit import DIRECTED_MEASURES, ENGINE_MEASURES, Directed, LinearFit, SvccaOptions
from reprsim.engine.linear_score import PairTerms, derive
from reprsim.engine.moments import CrossMoments, resolve_device
from reprsim.engine.pairs import PairResult, all_pairs, pair_results
from reprsim.engine.scheduler import PairFamily, Tile, plan_tiles, score_pairs
from reprsim.engine.sources import AttentionSource, RepresentationSource
from reprsim.engine.streaming import StreamingSimilarity

__all__ = [
    "DIRECTED_MEASURES",
    "ENGINE_MEASURES",
    "AttentionFamily",
    "AttentionSource",
    "CrossMoments",
    "Directed",
    "FoldFamily",
    "FoldMoments",
    "LinearFamily",
    "LinearFit",
    "PairFamily",
    "PairResult",
    "PairTerms",
    "RepresentationSource",
    "SampleFamily",
    "StreamingSimilarity",
    "SvccaOptions",
    "Tile",
    "all_pairs",
    "derive",
    "pair_results",
    "plan_tiles",
    "resolve_device",
    "score_pairs",
]
