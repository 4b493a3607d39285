"""reprsim.analysis: aggregate a results table into layer-to-model and model-to-model similarities,
cluster models and layers, score localisation, and follow fine-tuned models layer by layer."""

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
