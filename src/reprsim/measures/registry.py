"""The measure registry: every public similarity measure with the facts callers need to use it right.

`get(name)` returns a `MeasureInfo`; `available(level=None)` lists names. Callers (the engine, the CLI, the
analysis code) look up direction, the meaning of "larger", cost and invariances here instead of
hard-coding them per measure. Each flag is tested against the function's behaviour (tests/test_registry.py).

Invariance flags say that f(X T1, Y T2) == f(X, Y) for maps T1, T2 of the class applied to either side
independently (for attention measures: X, Y are layers and "permutation" permutes heads):
- "permutation": permuting neurons (columns);
- "orthogonal": any orthogonal map;
- "isotropic_scaling": multiplying by a positive constant;
- "invertible_linear": any invertible linear map, on either side;
- "invertible_linear_y_only": any invertible linear map of Y (the regression target side); X side not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, get_args

from reprsim.measures.attention import attention_cka, attention_js, attention_pearson
from reprsim.measures.cca import cca_r2, cca_rho, pwcca, svcca
from reprsim.measures.cka import debiased_cka, linear_cka, minibatch_cka, rbf_cka
from reprsim.measures.knn import mutual_knn
from reprsim.measures.neuron import maxsim
from reprsim.measures.procrustes import angular_distance, procrustes, procrustes_distance
from reprsim.measures.regression import linreg, r2_lr
from reprsim.measures.rsa import rsa

Level = Literal["neuron", "mixed", "distributed", "attention"]
LEVELS: tuple[str, ...] = get_args(Level)
INVARIANCES = frozenset(
    {"permutation", "orthogonal", "isotropic_scaling", "invertible_linear", "invertible_linear_y_only"}
)


@dataclass(frozen=True)
class MeasureInfo:
    """What a measure is and how to use it.

    name: registry name (also the function's name). function: f(X, Y) -> float (attention measures take
    per-sentence map sequences A, B). level: "neuron" | "mixed" | "distributed" | "attention".
    symmetric: f(X, Y) == f(Y, X); otherwise f(X, Y) is sim(X -> Y). larger_is_similar: False for distances.
    invariances: subset of INVARIANCES (see the module docstring). needs_subsample: builds n x n matrices, so
    it runs on a row subsample by default. streamable: computable in one pass over rows (or sentences) with
    memory independent of n. description: one line for listings.
    """

    name: str
    function: Callable[..., Any]
    level: Level
    symmetric: bool
    larger_is_similar: bool
    invariances: frozenset[str]
    needs_subsample: bool
    streamable: bool
    description: str

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"measure {self.name!r}: level must be one of {LEVELS}, got {self.level!r}")
        unknown = set(self.invariances) - INVARIANCES
        if unknown:
            raise ValueError(f"measure {self.name!r}: unknown invariance(s) {sorted(unknown)}")


_ORTHO = frozenset({"permutation", "orthogonal", "isotropic_scaling"})
_CCA = _ORTHO | {"invertible_linear"}
_PER_NEURON_X = frozenset({"permutation", "isotropic_scaling", "invertible_linear_y_only"})

_MEASURES = (
    MeasureInfo("maxsim", maxsim, "neuron", False, True, frozenset({"permutation", "isotropic_scaling"}),
                False, True, "mean over neurons of X of the best |Pearson| with a neuron of Y (Wu et al.)"),
    MeasureInfo("linreg", linreg, "mixed", False, True, _PER_NEURON_X, False, True,
                "mean multiple correlation of each neuron of X regressed on all of Y (Wu et al. mixedsim)"),
    MeasureInfo("r2_lr", r2_lr, "mixed", False, True, _ORTHO | {"invertible_linear_y_only"}, False,
                True, "fraction of X's variance explained by linear regression on Y (Kornblith et al.)"),
    MeasureInfo("cca_r2", cca_r2, "mixed", True, True, _CCA, False, True,
                "mean squared canonical correlation R2_CCA"),
    MeasureInfo("cca_rho", cca_rho, "mixed", True, True, _CCA, False, True,
                "mean canonical correlation rho_CCA"),
    MeasureInfo("svcca", svcca, "mixed", True, True, _ORTHO, False, True,
                "mean canonical correlation of the top singular directions (99% of variance; Raghu et al.)"),
    MeasureInfo("pwcca", pwcca, "mixed", False, True, _PER_NEURON_X, False, True,
                "canonical correlations weighted by how much of X each accounts for (Morcos et al.)"),
    MeasureInfo("linear_cka", linear_cka, "distributed", True, True, _ORTHO, False, True,
                "linear centered kernel alignment (Kornblith et al.)"),
    MeasureInfo("debiased_cka", debiased_cka, "distributed", True, True, _ORTHO, False, True,
                "linear CKA with the unbiased HSIC estimator (Song et al.)"),
    MeasureInfo("minibatch_cka", minibatch_cka, "distributed", True, True, _ORTHO, False, True,
                "linear CKA from unbiased HSIC summed over minibatches (Nguyen et al.)"),
    MeasureInfo("rbf_cka", rbf_cka, "distributed", True, True, _ORTHO, True, False,
                "CKA with RBF kernels, bandwidth 0.8 x median distance (Kornblith et al.)"),
    MeasureInfo("procrustes", procrustes, "distributed", True, True, _ORTHO, False, True,
                "normalised orthogonal Procrustes similarity (nuclear norm of X^T Y)"),
    MeasureInfo("procrustes_distance", procrustes_distance, "distributed", True, False, _ORTHO,
                False, True, "squared Procrustes distance 2 - 2 x similarity (Ding et al.)"),
    MeasureInfo("angular_distance", angular_distance, "distributed", True, False, _ORTHO, False,
                True, "angular Procrustes distance arccos(similarity) (Williams et al.)"),
    MeasureInfo("rsa", rsa, "distributed", True, True, frozenset({"permutation", "isotropic_scaling"}),
                True, False, "Spearman correlation of 1 - Pearson dissimilarity matrices"),
    MeasureInfo("mutual_knn", mutual_knn, "distributed", True, True,
                frozenset({"permutation", "isotropic_scaling"}), True, False,
                "shared fraction of each row's 10 nearest neighbours (Huh et al.)"),
    MeasureInfo("attention_js", attention_js, "attention", False, True, frozenset({"permutation"}),
                False, True, "mean over heads of the best head's 1 - Jensen-Shannon divergence (Wu et al.)"),
    MeasureInfo("attention_pearson", attention_pearson, "attention", False, True,
                frozenset({"permutation"}), False, True,
                "mean over heads of the best head's row-wise Pearson correlation (Wu et al.)"),
    MeasureInfo("attention_cka", attention_cka, "attention", True, True, frozenset({"permutation"}),
                False, True, "linear CKA between the heads' flattened attention maps (Wu et al.)"),
)

_BY_NAME = MappingProxyType({info.name: info for info in _MEASURES})


def get(name: str) -> MeasureInfo:
    """The registry entry of measure `name`; KeyError listing the available names if there is none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown measure {name!r}; available: {', '.join(available())}") from None


def available(level: str | None = None) -> list[str]:
    """Names of the registered measures (of one level if given), in registry order: neuron to attention."""
    if level is not None and level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS} or None, got {level!r}")
    return [info.name for info in _MEASURES if level is None or info.level == level]
