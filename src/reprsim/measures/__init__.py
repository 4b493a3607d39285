"""Similarity measures between representations (n words x p neurons) and between attention layers.

Every representation measure takes two row-aligned matrices ``X`` (n x p) and ``Y`` (n x q), one row per word
in both, as numpy arrays or torch tensors (any float dtype, CPU or GPU), computes in float64 on the input's
device and returns a python float; `canonical_correlations`, `maxsim_per_neuron` and
`attention_head_similarity` return the finer-grained values their measures are built from. The attention
measures take two layers' per-sentence (heads, T, T) attention maps instead.

- Neuron level: `maxsim` (with `maxsim_per_neuron`).
- Mixed: `linreg`, `r2_lr`, `cca_r2`, `cca_rho`, `svcca`, `pwcca` (with `canonical_correlations`).
- Distributed: `linear_cka`, `debiased_cka`, `minibatch_cka` (streamed by `MinibatchCKA`), `rbf_cka`,
  `procrustes`, `procrustes_distance`, `angular_distance`, `rsa`, `mutual_knn`.
- Attention: `attention_js`, `attention_pearson`, `attention_cka` (with `attention_head_similarity`).
- Shapes, spectra and matching: `shape_metric` (netrep's partial whitening), `bures_distance`, `gulp`,
  `ensd` (with `participation_ratio`), `eigenspace_overlap`, `lange_cka`, `hard_matching`,
  `soft_matching_distance`, `linear_predictivity`, and ReSi's `magnitude_difference`,
  `concentricity_difference` and `uniformity_difference`.
- Neighbourhoods and RSMs: `jaccard_knn`, `rank_similarity`, `second_order_cosine`, `cknna`, `cycle_knn`,
  `distance_correlation`, and `rsa`'s RDM and comparison variants.

A directed measure returns sim(X -> Y), how well X is reproduced from Y. The registry (`get`, `available`,
`MeasureInfo`) tells direction, "larger means", cost, conventions and invariances of each measure by name;
the measures guide and the measure reference of the documentation give the definitions. Bad input raises a
``ValueError`` that names the problem; `ConstantNeuronWarning`, `FewRowsWarning` and `SubsampleWarning`
flag values computed without constant neurons, from too few rows, or on a row subsample.
"""

from reprsim.arrays import ConstantNeuronWarning, FewRowsWarning
from reprsim.measures._subsample import SubsampleWarning
from reprsim.measures.attention import (
    attention_cka,
    attention_head_similarity,
    attention_js,
    attention_pearson,
)
from reprsim.measures.cca import canonical_correlations, cca_r2, cca_rho, pwcca, svcca
from reprsim.measures.cka import MinibatchCKA, debiased_cka, linear_cka, minibatch_cka, rbf_cka
from reprsim.measures.knn import mutual_knn
from reprsim.measures.matching import hard_matching, soft_matching_distance
from reprsim.measures.neighbours import cknna, cycle_knn, jaccard_knn, rank_similarity, second_order_cosine
from reprsim.measures.neuron import NeuronMatch, maxsim, maxsim_per_neuron
from reprsim.measures.predictivity import linear_predictivity
from reprsim.measures.procrustes import angular_distance, procrustes, procrustes_distance
from reprsim.measures.registry import MeasureInfo, available, get
from reprsim.measures.regression import linreg, r2_lr
from reprsim.measures.rsa import distance_correlation, rsa
from reprsim.measures.shape import bures_distance, shape_metric
from reprsim.measures.spectral import eigenspace_overlap, ensd, gulp, lange_cka, participation_ratio
from reprsim.measures.statistics import concentricity_difference, magnitude_difference, uniformity_difference

__all__ = [
    "ConstantNeuronWarning",
    "FewRowsWarning",
    "MeasureInfo",
    "MinibatchCKA",
    "NeuronMatch",
    "SubsampleWarning",
    "angular_distance",
    "attention_cka",
    "attention_head_similarity",
    "attention_js",
    "attention_pearson",
    "available",
    "bures_distance",
    "canonical_correlations",
    "cca_r2",
    "cca_rho",
    "cknna",
    "concentricity_difference",
    "cycle_knn",
    "debiased_cka",
    "distance_correlation",
    "eigenspace_overlap",
    "ensd",
    "get",
    "gulp",
    "hard_matching",
    "jaccard_knn",
    "lange_cka",
    "linear_cka",
    "linear_predictivity",
    "linreg",
    "magnitude_difference",
    "maxsim",
    "maxsim_per_neuron",
    "minibatch_cka",
    "mutual_knn",
    "participation_ratio",
    "procrustes",
    "procrustes_distance",
    "pwcca",
    "r2_lr",
    "rank_similarity",
    "rbf_cka",
    "rsa",
    "second_order_cosine",
    "shape_metric",
    "soft_matching_distance",
    "svcca",
    "uniformity_difference",
]
