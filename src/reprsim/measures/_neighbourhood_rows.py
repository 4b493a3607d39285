"""The registry rows of the neighbourhood and RSM measures (see `reprsim.measures.registry`).

Kept apart from the registry module so that each file holds one family's rows; `neighbourhood_measure_rows` is
called once, while the registry builds its table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reprsim.measures._info import MeasureInfo


def neighbourhood_measure_rows() -> tuple[MeasureInfo, ...]:
    """The rows of the measures on one k-NN graph, RDM or distance matrix per representation.

    Returns
    -------
    tuple of MeasureInfo
        The rows, in the order the registry lists them.
    """
    from reprsim.measures._info import NEURON_SCALING as _NEURON_SCALING
    from reprsim.measures._info import ORTHO as _ORTHO
    from reprsim.measures._info import MeasureInfo
    from reprsim.measures.knn import DEFAULT_K
    from reprsim.measures.neighbours import cknna, cycle_knn, jaccard_knn, rank_similarity, second_order_cosine
    from reprsim.measures.rsa import distance_correlation

    graph = (
        f"Neighbours by cosine similarity of the rows, a row never its own neighbour, k = {DEFAULT_K} by default "
        "(option k, 1 <= k < n); among rows tied at the k-th similarity the lower row indices are taken, and "
        "neighbours are ranked by similarity with ties towards the lower index (the published code leaves ties "
        "to its sort). The graph is built once per representation and every pair is scored from two graphs."
    )
    resi = " No clipping by default (clip_quantile=None), as ReSi; a clip_quantile clips as mutual_knn does."
    platonic = (
        " Rows are clipped at the exact 0.95 quantile of |x| (option clip_quantile; platonic-rep's pipeline uses "
        "the mean of per-row quantiles by default) and L2-normalised, as platonic-rep prepares features."
    )
    graph_cost = "O(n^2 (p + q)) in blocks for the graphs, O(n k log(n k)) per pair; memory O(n k)"
    resi_reference = "Klabunde et al. 2025, ReSi: a comprehensive benchmark for representational similarity " \
        "measures (ICLR); code github.com/mklabunde/resi, repsim/measures/nearest_neighbor.py"
    platonic_reference = "Huh et al. 2024, The Platonic Representation Hypothesis (ICML); code " \
        "github.com/minyoungg/platonic-rep, metrics.py"
    return (
        MeasureInfo(
            name="jaccard_knn", function=jaccard_knn, level="distributed", symmetric=True, larger_is_similar=True,
            invariances=_ORTHO, needs_subsample=True, streamable=False,
            description=f"mean Jaccard index of each row's {DEFAULT_K} nearest neighbours in X and in Y (ReSi)",
            definition="mean over rows i of |N_X(i) & N_Y(i)| / |N_X(i) | N_Y(i)|, N(i) the k nearest other "
            "rows of i by cosine similarity.",
            convention=graph + resi + " Runs on a seeded row subsample.",
            reference=resi_reference, cost=graph_cost, similarity_repository_id="jaccard_similarity",
        ),
        MeasureInfo(
            name="rank_similarity", function=rank_similarity, level="distributed", symmetric=True,
            larger_is_similar=True, invariances=_ORTHO, needs_subsample=True, streamable=False,
            description="agreement of the ranks of the shared nearest neighbours (Wang et al.; ReSi)",
            definition="mean over rows i of sum_{j in J} 2 / ((1 + |r_X(j) - r_Y(j)|) (r_X(j) + r_Y(j))) / "
            "sum_{m=1}^{|J|} 1/m, J = N_X(i) & N_Y(i) and r(j) the rank (1 = nearest) of j among the k "
            "neighbours of i; a row without shared neighbours scores 0.",
            convention=graph + resi + " The normalisation by the harmonic number of |J| is ReSi's. Runs on a "
            "seeded row subsample.",
            reference="Wang et al. 2020, Towards understanding learning representations (ICML); " + resi_reference,
            cost=graph_cost, similarity_repository_id="rank_similarity",
        ),
        MeasureInfo(
            name="second_order_cosine", function=second_order_cosine, level="distributed", symmetric=True,
            larger_is_similar=True, invariances=_ORTHO, needs_subsample=True, streamable=False,
            description="cosine of each row's similarities to its nearest neighbours in X and in Y (Hamilton et al.)",
            definition="mean over rows i of cos(s_X, s_Y), s = cos(row_i, row_j) over j in N_X(i) | N_Y(i), "
            "the union of the k nearest neighbours of i in both.",
            convention=graph + resi + " Cosine similarities by default, as Hamilton et al. and ReSi's paper "
            "define it; vectors=distance compares the cosine distances 1 - s instead, as ReSi's code does (that "
            "variant is similarity-repository's second_order_cosine_similarity; on weakly related data it "
            "barely separates related from unrelated pairs). A row whose vectors are zero on both sides scores "
            "1, on one side 0. Each graph keeps its unit rows, from which a pair reads the similarities of the "
            "other graph's neighbours; runs on a seeded row subsample (5,000 rows).",
            reference="Hamilton et al. 2016, Cultural shift or linguistic drift? (EMNLP); " + resi_reference,
            cost="O(n^2 (p + q)) for the graphs, O(n k (log(n k) + p + q)) per pair; memory O(n (k + p + q))",
        ),
        MeasureInfo(
            name="cknna", function=cknna, level="distributed", symmetric=False, larger_is_similar=True,
            invariances=_NEURON_SCALING, needs_subsample=True, streamable=False,
            description=f"CKA restricted to the shared {DEFAULT_K} nearest neighbours, unbiased HSIC (Huh et al.)",
            definition="HSIC_u(M o K, M o L) / sqrt(HSIC_u(M_X o K, M_X o K) HSIC_u(M_Y o L, M_Y o L)), K and L "
            "the cosine kernels, M_X (M_Y) the k-NN masks and M = M_X o M_Y, HSIC_u Song et al.'s unbiased "
            "estimator.",
            convention=graph + platonic + " As platonic-rep's cknna(topk=k, unbiased=True) without its 1e-6 in "
            "the denominator, so a representation with itself gives exactly 1; k >= 2, n >= 4. The masked "
            "kernels are not symmetric, so cknna(X, Y) differs slightly from cknna(Y, X) (X is feats_A).",
            reference=platonic_reference, cost=graph_cost, similarity_repository_id=f"cknna-topk={DEFAULT_K}",
        ),
        MeasureInfo(
            name="cycle_knn", function=cycle_knn, level="distributed", symmetric=False, larger_is_similar=True,
            invariances=_NEURON_SCALING, needs_subsample=True, streamable=False,
            description="fraction of rows whose Y-neighbours have them as X-neighbours (Huh et al.)",
            definition="mean over rows i of 1[some j in N_Y(i) has i in N_X(j)]: the walk from i to a "
            "Y-neighbour and back through X's graph returns to i.",
            convention=graph + platonic + " Directed as platonic-rep's cycle_knn(feats_A=X, feats_B=Y). With "
            "itself it is the fraction of rows with a reciprocal neighbour, not 1.",
            reference=platonic_reference, cost=graph_cost, similarity_repository_id=f"cycle_knn-topk={DEFAULT_K}",
        ),
        MeasureInfo(
            name="distance_correlation", function=distance_correlation, level="distributed", symmetric=True,
            larger_is_similar=True, invariances=_ORTHO, needs_subsample=True, streamable=False,
            description="distance correlation of the rows of X and Y (Szekely et al.)",
            definition="dCor = sqrt(dCov^2(X, Y) / sqrt(dVar^2(X) dVar^2(Y))), dCov^2 the mean of the "
            "elementwise product of the double-centred Euclidean distance matrices.",
            convention="The biased V-statistic (dcor.distance_correlation's default, and ReSi's), not the "
            "unbiased or bias-corrected one. Distances from the Gram matrix of centred columns, squared "
            "distances below their rounding set to 0. Runs on a seeded row subsample (5,000 rows).",
            reference="Szekely, Rizzo & Bakirov 2007, Measuring and testing dependence by correlation of "
            "distances (Ann. Statist.)",
            cost="O(n^2 (p + q)); memory O(n^2)", similarity_repository_id="distance_correlation",
        ),
    )
