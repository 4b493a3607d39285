"""The registry rows of the measures the engine derives from its blocks (see `reprsim.measures.registry`).

Kept apart from the registry module so that each file holds one family's rows; `block_measure_rows` is called
once, while the registry builds its table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reprsim.measures._info import MeasureInfo


def block_measure_rows() -> tuple[MeasureInfo, ...]:
    """The rows of the block-derived measures.

    shape_metric, bures_distance, gulp, linear_predictivity, the matchings, ENSD, the eigenspace overlap,
    lange CKA and ReSi's statistics.

    Returns
    -------
    tuple of MeasureInfo
        The rows, in the order the registry lists them.
    """
    from reprsim.measures._info import CCA as _CCA
    from reprsim.measures._info import LINEAR_COST as _LINEAR_COST
    from reprsim.measures._info import NEURON_SCALING as _NEURON_SCALING
    from reprsim.measures._info import ORTHO as _ORTHO
    from reprsim.measures._info import PER_NEURON_X as _PER_NEURON_X
    from reprsim.measures._info import MeasureInfo
    from reprsim.measures.matching import hard_matching, soft_matching_distance
    from reprsim.measures.predictivity import linear_predictivity
    from reprsim.measures.shape import bures_distance, shape_metric
    from reprsim.measures.spectral import eigenspace_overlap, ensd, gulp, lange_cka
    from reprsim.measures.statistics import concentricity_difference, magnitude_difference, uniformity_difference

    rotations = frozenset({"permutation", "orthogonal"})
    resi = "Klabunde et al. 2025, ReSi: A comprehensive benchmark for representational similarity measures (ICLR)"
    return (
        MeasureInfo(
            name="shape_metric", function=shape_metric, level="distributed", symmetric=True,
            larger_is_similar=False, invariances=_ORTHO, needs_subsample=False, streamable=True,
            description="netrep's shape distance with partial whitening alpha (1: angular Procrustes)",
            definition="Centre, whiten partially with Z = V diag(alpha + (1 - alpha) / sqrt(lambda)) V^T (lambda the "
            "eigenvalues of X_c^T X_c) rescaled to keep tr X_c^T X_c, zero-pad the narrower side, align by the best "
            "orthogonal map; angular: arccos(||X~^T Y~||_* / (||X~|| ||Y~||)), euclidean: ||X~ Q - Y~||_F.",
            convention="netrep's LinearMetric (center_columns, zero_pad, preserve_variance); alpha = 1 and "
            "kind='angular' by default (= angular_distance); euclidean is not divided by n. Directions of numerical "
            "rank 0 count with eigenvalue 0 (netrep clips at 1e-7). Invariant to invertible linear maps only at "
            "alpha = 0; for 0 < alpha < 1 it depends on the data's scale, as netrep's does.",
            reference="Williams et al. 2021, Generalized shape metrics on neural representations (NeurIPS)",
            cost=_LINEAR_COST, similarity_repository_id="shape_metric-alpha={alpha}-distance={kind}",
        ),
        MeasureInfo(
            name="bures_distance", function=bures_distance, level="distributed", symmetric=True,
            larger_is_similar=False, invariances=rotations, needs_subsample=False, streamable=True,
            description="Bures distance of the centred linear kernels (unnormalised Procrustes)",
            definition="sqrt(tr X_c^T X_c + tr Y_c^T Y_c - 2 ||X_c^T Y_c||_*) = min_Q ||X_c Q - Y_c||_F, the Bures-"
            "Wasserstein distance of X_c X_c^T and Y_c Y_c^T.",
            convention="Not divided by n and not normalised; the normalised Bures similarity is `procrustes`. Equal "
            "to shape_metric(alpha=1, kind=euclidean).",
            reference="Harvey et al. 2024, Duality of Bures and shape distances with implications for comparing "
            "neural representations (UniReps)", cost=_LINEAR_COST, similarity_repository_id="bures_distance",
        ),
        MeasureInfo(
            name="gulp", function=gulp, level="mixed", symmetric=True, larger_is_similar=False,
            invariances=_CCA, needs_subsample=False, streamable=True,
            description="GULP: distance between ridge predictors on the two representations (squared)",
            definition="With S = X_c^T X_c / ||X_c||_F^2 and W = (S + lam I)^-1: tr((S_x W_x)^2) + tr((S_y W_y)^2) "
            "- 2 tr(W_x^1/2 S_xy W_y S_yx W_x^1/2); at lam = 0, rank X + rank Y - 2 sum_k rho_k^2.",
            convention="The squared distance, as GULP's predictor_dist and ReSi return it; rows centred and scaled to "
            "unit mean squared norm; lam = 0 by default (ReSi's default), where it is invariant to invertible linear "
            "maps; lam > 0 keeps only orthogonal and scaling invariance.",
            reference="Boix-Adsera et al. 2022, GULP: a prediction-based metric between representations (NeurIPS)",
            cost=_LINEAR_COST, similarity_repository_id="gulp",
        ),
        MeasureInfo(
            name="linear_predictivity", function=linear_predictivity, level="mixed", symmetric=False,
            larger_is_similar=True, invariances=_PER_NEURON_X, needs_subsample=False, streamable=False,
            description="k-fold cross-validated ridge/OLS prediction of X's neurons from Y (Pearson r or R^2)",
            definition="sim(X -> Y): fit X ~ Y W + b on all folds but one (min ||X - YW - b||^2 + lam ||W||^2), "
            "score each neuron of X on the held-out fold (Pearson r or R^2), mean over neurons, then over folds.",
            convention="lam = 0 (least squares), score='pearson', folds=5 by default; folds are consecutive blocks of "
            "whole sentences (sentence_lengths or groups; default one row each), like KFold without shuffling; "
            "neurons constant in a held-out fold are left out. Computed from per-fold moments; the engine's "
            "per-fold accumulator is reprsim.engine.FoldMoments.",
            reference="Yamins et al. 2014 (PNAS); Schrimpf et al. 2018, Brain-Score (bioRxiv)",
            cost="O(n p q) for the per-fold moments, O(k (p + q)^3) for the fits; memory O(k (p + q)^2)",
            similarity_repository_id="linear_regression-pearsonr-cv=5folds",
        ),
        MeasureInfo(
            name="hard_matching", function=hard_matching, level="neuron", symmetric=True, larger_is_similar=True,
            invariances=_NEURON_SCALING, needs_subsample=False, streamable=True,
            description="mean |Pearson| of the best 1-to-1 assignment of neurons (Hungarian)",
            definition="max over 1-to-1 assignments of min(p, q) neuron pairs (i, j) of the mean |Pearson(x_i, y_j)|, "
            "solved by scipy.optimize.linear_sum_assignment.",
            convention="|Pearson|, so a negated neuron matches fully (ReSi's HardCorrelationMatch uses the signed "
            "correlation); constant neurons are left out.",
            reference="Li et al. 2015, Convergent learning: do different neural networks learn the same "
            "representations? (ICLR workshop); " + resi, cost=_LINEAR_COST + "; O(p^2 q) for the assignment",
        ),
        MeasureInfo(
            name="soft_matching_distance", function=soft_matching_distance, level="neuron", symmetric=True,
            larger_is_similar=False, invariances=_NEURON_SCALING, needs_subsample=False, streamable=True,
            description="optimal-transport matching of neurons (Khosla & Williams soft matching distance)",
            definition="sqrt(min_P sum_ij P_ij ||x_i - y_j||^2) over transport plans P with marginals 1/p and 1/q, "
            "x_i and y_j the centred unit-norm neurons (||x_i - y_j||^2 = 2 - 2 Pearson).",
            convention="Neurons standardised to unit norm; signed correlation (a negated neuron does not match); "
            "exact transport (POT's ot.emd2 when installed, else SciPy's HiGHS).",
            reference="Khosla & Williams 2023, Soft matching distance: a metric on neural representations that "
            "captures single-neuron tuning (UniReps)", cost=_LINEAR_COST + "; the transport problem on p x q",
        ),
        MeasureInfo(
            name="ensd", function=ensd, level="distributed", symmetric=True, larger_is_similar=True,
            invariances=_ORTHO, needs_subsample=False, streamable=True,
            description="effective number of shared dimensions (Giaffar et al.)",
            definition="ENSD = PR_x PR_y tr(C_x C_y) / (tr C_x tr C_y) on centred covariances = linear_cka * "
            "sqrt(PR_x PR_y), PR = (tr C)^2 / tr(C^2) each layer's participation ratio.",
            convention="Not normalised: ENSD(X, X) = PR_x (a number of dimensions, not 1). The per-layer "
            "participation ratio is reprsim.measures.participation_ratio (LinearFit.participation_ratio).",
            reference="Giaffar et al. 2023, The effective number of shared dimensions: a simple method for revealing "
            "shared structure between datasets (bioRxiv)", cost=_LINEAR_COST, similarity_repository_id="ensd",
        ),
        MeasureInfo(
            name="eigenspace_overlap", function=eigenspace_overlap, level="distributed", symmetric=True,
            larger_is_similar=True, invariances=_CCA, needs_subsample=False, streamable=True,
            description="eigenspace overlap score: shared column space of X and Y (May et al.)",
            definition="||U_x^T U_y||_F^2 / max(p, q), U_x, U_y orthonormal bases of the column spaces of X and Y.",
            convention="Uncentred, as May et al. and ReSi; ranks decided on unit-norm columns; divided by the "
            "widths (not the ranks), so a rank-deficient X compared with itself scores rank / p.",
            reference="May et al. 2019, On the downstream performance of compressed word embeddings (NeurIPS)",
            cost=_LINEAR_COST, similarity_repository_id="eigenspace_overlap_score",
        ),
        MeasureInfo(
            name="lange_cka", function=lange_cka, level="distributed", symmetric=True, larger_is_similar=True,
            invariances=_ORTHO, needs_subsample=False, streamable=True,
            description="linear CKA of centred Grams with zeroed diagonals (Lange et al.)",
            definition="<K~, L~> / sqrt(<K~, K~> <L~, L~>), K~ = X_c X_c^T with its diagonal set to 0; from blocks "
            "<K~, L~> = ||X_c^T Y_c||_F^2 - sum_i |x_c,i|^2 |y_c,i|^2.",
            convention="No U-statistic correction beyond the zeroed diagonal (that is debiased_cka).",
            reference="Lange et al. 2023, Deep networks as paths on the manifold of neural representations "
            "(TAG-ML)", cost=_LINEAR_COST, similarity_repository_id="cka-kernel=linear-hsic=lange-score",
        ),
        MeasureInfo(
            name="magnitude_difference", function=magnitude_difference, level="distributed", symmetric=True,
            larger_is_similar=False, invariances=rotations, needs_subsample=False, streamable=True,
            description="ReSi's difference of the norms of the mean rows",
            definition="| ||mean_i x_i|| - ||mean_i y_i|| |, uncentred.",
            convention="As ReSi's magnitude_difference (the norm of the mean row, not the mean row norm); in the "
            "data's units.",
            reference=resi, cost="O(n (p + q)); memory O(p + q)",
            similarity_repository_id="magnitude_difference",
        ),
        MeasureInfo(
            name="concentricity_difference", function=concentricity_difference, level="distributed",
            symmetric=True, larger_is_similar=False, invariances=_ORTHO, needs_subsample=False, streamable=False,
            description="ReSi's difference of the mean cosine of the rows with the mean row",
            definition="|mean_i cos(x_i, xbar) - mean_i cos(y_i, ybar)|, xbar the mean row.",
            convention="As ReSi's concentricity_difference; needs every row's norm, so it is computed from the rows "
            "(in compare, on the row subsample), not from the engine's blocks.",
            reference=resi, cost="O(n (p + q)); memory O(n)",
            similarity_repository_id="concentricity_difference",
        ),
        MeasureInfo(
            name="uniformity_difference", function=uniformity_difference, level="distributed", symmetric=True,
            larger_is_similar=False, invariances=rotations, needs_subsample=True, streamable=False,
            description="ReSi's difference of the uniformity log mean exp(-2 ||x_i - x_j||^2)",
            definition="|u(X) - u(Y)|, u(X) = log(mean over all ordered pairs (i, j) of exp(-2 ||x_i - x_j||^2)).",
            convention="t = 2 and the diagonal included, as ReSi; a log-sum-exp keeps far-apart rows from "
            "underflowing. Runs on a seeded row subsample (5,000 rows).",
            reference="Wang & Isola 2020 (ICML); " + resi, cost="O(n^2 (p + q)); memory O(n^2)",
            similarity_repository_id="uniformity_difference",
        ),
    )
