"""Similarity measures between representations (n words x p neurons) and between attention layers.

Every function takes numpy arrays or torch tensors (any float dtype, CPU or GPU), computes in float64 on the
input's device and returns a python float (definitions: docs/measures.md). The registry (`get`, `available`,
`MeasureInfo`) tells direction, "larger means", cost and invariances of each measure by name.
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
from reprsim.measures.neuron import NeuronMatch, maxsim, maxsim_per_neuron
from reprsim.measures.procrustes import angular_distance, procrustes, procrustes_distance
from reprsim.measures.registry import MeasureInfo, available, get
from reprsim.measures.regression import linreg, r2_lr
from reprsim.measures.rsa import rsa

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
    "canonical_correlations",
    "cca_r2",
    "cca_rho",
    "debiased_cka",
    "get",
    "linear_cka",
    "linreg",
    "maxsim",
    "maxsim_per_neuron",
    "minibatch_cka",
    "mutual_knn",
    "procrustes",
    "procrustes_distance",
    "pwcca",
    "r2_lr",
    "rbf_cka",
    "rsa",
    "svcca",
]
