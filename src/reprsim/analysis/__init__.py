"""Analyses of a results table: from layer pairs to models, clusters, localisation and fine-tuning.

- `layer_to_model`, `model_to_model`, `model_matrix`: aggregate layer-pair similarities into the similarity
  of a layer to a model and of a model to a model (`reprsim.analysis.aggregate`).
- `cluster_models`, `cluster_layers`: hierarchical clustering of models and of layers
  (`reprsim.analysis.clustering`).
- `localisation_scores`: whether what a layer shares with other models sits in single neurons or is
  distributed (`reprsim.analysis.localisation`).
- `finetune_similarity`: how far fine-tuning moved each layer (`reprsim.analysis.finetune`).
"""

from reprsim.analysis.aggregate import (
    best_match,
    larger_means_similar,
    layer_to_model,
    model_matrix,
    model_to_model,
)
from reprsim.analysis.clustering import Clustering, cluster, cluster_layers, cluster_models, to_dissimilarity
from reprsim.analysis.finetune import finetune_similarity
from reprsim.analysis.localisation import localisation_scores, mean_to_other_models, zscore

__all__ = [
    "Clustering",
    "best_match",
    "cluster",
    "cluster_layers",
    "cluster_models",
    "finetune_similarity",
    "larger_means_similar",
    "layer_to_model",
    "localisation_scores",
    "mean_to_other_models",
    "model_matrix",
    "model_to_model",
    "to_dissimilarity",
    "zscore",
]
