"""Analyses of a results table: from layer pairs to models, clusters, localisation and fine-tuning.

- `layer_to_model`, `model_to_model`, `model_matrix`, `model_pairs`: aggregate layer-pair similarities into the
  similarity of a layer to a model and of a model to a model, by one of `AGGREGATIONS` (mean of the best
  match, max over layer pairs, depth diagonal); `depth_aggregate`: the unit square of relative depths
  averaged over model pairs (`reprsim.analysis.aggregate`); `aggregate_statistics`: a model-level value's
  interval from its layer pairs' replicates (`reprsim.analysis.aggregate_stats`).
- `cluster_models`, `cluster_layers`: hierarchical clustering of models and of layers
  (`reprsim.analysis.clustering`).
- `localisation_scores`: whether what a layer shares with other models sits in single neurons or is
  distributed (`reprsim.analysis.localisation`).
- `finetune_similarity`: how far fine-tuning moved each layer (`reprsim.analysis.finetune`).
"""

from reprsim.analysis.aggregate import (
    AGGREGATIONS,
    best_match,
    depth_aggregate,
    larger_means_similar,
    layer_to_model,
    model_matrix,
    model_pairs,
    model_to_model,
    relative_depth,
)
from reprsim.analysis.aggregate_stats import aggregate_statistics, aggregate_values
from reprsim.analysis.clustering import Clustering, cluster, cluster_layers, cluster_models, to_dissimilarity
from reprsim.analysis.finetune import finetune_similarity
from reprsim.analysis.localisation import localisation_scores, mean_to_other_models, zscore

__all__ = [
    "AGGREGATIONS",
    "Clustering",
    "aggregate_statistics",
    "aggregate_values",
    "best_match",
    "cluster",
    "cluster_layers",
    "cluster_models",
    "depth_aggregate",
    "finetune_similarity",
    "larger_means_similar",
    "layer_to_model",
    "localisation_scores",
    "mean_to_other_models",
    "model_matrix",
    "model_pairs",
    "model_to_model",
    "relative_depth",
    "to_dissimilarity",
    "zscore",
]
