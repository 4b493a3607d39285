"""Hierarchical clustering of models and of layers (average linkage by default, on a symmetric dissimilarity).

Dissimilarity = 1 - symmetric similarity for similarity measures, the symmetrised distance itself for
distance measures (docs/measures.md, "From layers to models"). Directed measures are symmetrised by averaging
the two directions before clustering, since a dendrogram needs one number per unordered pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from reprsim.analysis.aggregate import distinct_models, larger_means_similar, model_to_model
from reprsim.results import LayerId, ResultTable

# Linkages that need only a dissimilarity; ward/centroid/median assume Euclidean distances.
LINKAGE_METHODS: tuple[str, ...] = ("average", "complete", "single", "weighted")


@dataclass(frozen=True)
class Clustering:
    """A hierarchical clustering: the scipy linkage matrix, the leaves' labels and the dissimilarities used.

    Attributes
    ----------
    measure : str
        The measure the dissimilarities come from.
    method : str
        The linkage method (one of ``"average"``, ``"complete"``, ``"single"``, ``"weighted"``).
    labels : tuple of str or tuple of LayerId
        The leaves: model names (`cluster_models`) or layers (`cluster_layers`), in matrix order.
    linkage : numpy.ndarray
        The ``(len(labels) - 1, 4)`` linkage matrix of `scipy.cluster.hierarchy.linkage`.
    dissimilarity : numpy.ndarray
        The square dissimilarity matrix clustered, with a zero diagonal, rows and columns in `labels` order.
    """

    measure: str
    method: str
    labels: tuple[str, ...] | tuple[LayerId, ...]
    linkage: np.ndarray
    dissimilarity: np.ndarray  # square, zero diagonal, rows/columns in `labels` order

    def groups(self, n_groups: int) -> list[int]:
        """Cut the tree into a number of clusters and give each label its cluster.

        Parameters
        ----------
        n_groups : int
            The number of clusters, between 1 and the number of labels.

        Returns
        -------
        list of int
            The cluster number (1 to `n_groups`) of each label, in `labels` order (scipy's ``fcluster`` with
            ``criterion="maxclust"``, which may give fewer clusters on tied heights).

        Raises
        ------
        ValueError
            If `n_groups` is out of range.
        """
        if not 1 <= n_groups <= len(self.labels):
            raise ValueError(f"n_groups must be between 1 and {len(self.labels)}, got {n_groups}")
        return [int(g) for g in fcluster(self.linkage, t=n_groups, criterion="maxclust")]


def to_dissimilarity(values: np.ndarray, larger_is_similar: bool) -> np.ndarray:
    """Symmetrise a square matrix and turn it into a dissimilarity with an exact zero diagonal.

    The matrix is averaged with its transpose; for a similarity measure the dissimilarity is 1 minus that,
    for a distance it is the symmetrised distance itself. The diagonal is set to 0 by definition (an item's
    distance to itself), not taken from the data.

    Parameters
    ----------
    values : numpy.ndarray
        A square matrix of similarities or distances, converted to float64.
    larger_is_similar : bool
        True if `values` are similarities, False if they are distances.

    Returns
    -------
    numpy.ndarray
        The symmetric dissimilarity matrix, same shape as `values`.

    Raises
    ------
    ValueError
        If `values` is not square or holds NaN or Inf.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError(f"a dissimilarity needs a square matrix, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("a dissimilarity needs finite values; the matrix has NaN or Inf")
    sym = (values + values.T) / 2.0
    out = 1.0 - sym if larger_is_similar else sym
    np.fill_diagonal(out, 0.0)
    return out


def cluster(
    dissimilarity: np.ndarray,
    labels: Sequence[str] | Sequence[LayerId],
    measure: str,
    method: str = "average",
) -> Clustering:
    """Cluster items hierarchically from a square dissimilarity matrix.

    Parameters
    ----------
    dissimilarity : numpy.ndarray
        A symmetric ``(n, n)`` dissimilarity matrix with a zero diagonal (see `to_dissimilarity`).
    labels : sequence of str or sequence of LayerId
        The ``n`` items, in matrix order.
    measure : str
        The measure the dissimilarities come from (recorded in the result).
    method : str, default "average"
        The linkage method: ``"average"``, ``"complete"``, ``"single"`` or ``"weighted"``. Ward, centroid
        and median linkage are not offered: they assume Euclidean distances.

    Returns
    -------
    Clustering
        The clustering.

    Raises
    ------
    ValueError
        If `method` is unknown, there are fewer than two labels, or the matrix shape does not match the
        labels.
    """
    if method not in LINKAGE_METHODS:
        raise ValueError(f"unknown linkage method {method!r}; use one of {list(LINKAGE_METHODS)}")
    if len(labels) < 2:
        raise ValueError(f"clustering needs at least two items, got {len(labels)}")
    if dissimilarity.shape != (len(labels), len(labels)):
        raise ValueError(f"dissimilarity shape {dissimilarity.shape} does not match {len(labels)} labels")
    condensed = squareform(dissimilarity, checks=False)
    tree = linkage(condensed, method=method)
    return Clustering(
        measure=measure,
        method=method,
        labels=tuple(labels),  # type: ignore[arg-type]
        linkage=tree,
        dissimilarity=dissimilarity,
    )


def cluster_models(
    table: ResultTable,
    measure: str,
    models: Sequence[str] | None = None,
    larger_is_similar: bool | None = None,
    method: str = "average",
) -> Clustering:
    """Cluster models on 1 - symmetrised model-to-model similarity (or on the symmetrised distance).

    Parameters
    ----------
    table : ResultTable
        The results table.
    measure : str
        The measure whose model-to-model aggregate (see `reprsim.analysis.model_to_model`) is clustered.
    models : sequence of str, optional
        The models to cluster (at least two); default all models that `measure` covers.
    larger_is_similar : bool, optional
        Whether larger values mean more similar; default from the measure registry.
    method : str, default "average"
        The linkage method (see `cluster`).

    Returns
    -------
    Clustering
        The clustering, labelled by model name.

    Raises
    ------
    KeyError
        If `measure`, a model or a needed layer pair is not in the table, or the measure's direction is
        unknown.
    ValueError
        If fewer than two models are covered, or `method` is unknown.
    """
    larger = larger_means_similar(measure, larger_is_similar)
    names = distinct_models(table, models, measure)
    tidy = model_to_model(table, measure, names, larger)
    position = {name: i for i, name in enumerate(names)}
    values = np.zeros((len(names), len(names)))
    for row in tidy.itertuples(index=False):
        values[position[row.model_a], position[row.model_b]] = row.symmetric
    # Diagonal: perfect similarity (or zero distance) by definition; to_dissimilarity zeroes it anyway.
    np.fill_diagonal(values, 1.0 if larger else 0.0)
    return cluster(to_dissimilarity(values, larger), names, measure, method)


def cluster_layers(
    table: ResultTable,
    measure: str,
    models: Sequence[str] | None = None,
    larger_is_similar: bool | None = None,
    method: str = "average",
) -> Clustering:
    """Cluster every layer of some models on 1 - symmetrised layer similarity (or the symmetrised distance).

    Unlike `cluster_models`, this needs the within-model layer pairs too: the results table must hold every
    pair of the chosen layers.

    Parameters
    ----------
    table : ResultTable
        The results table.
    measure : str
        The measure to cluster on.
    models : sequence of str, optional
        The models whose layers are clustered; default all models.
    larger_is_similar : bool, optional
        Whether larger values mean more similar; default from the measure registry.
    method : str, default "average"
        The linkage method (see `cluster`).

    Returns
    -------
    Clustering
        The clustering, labelled by `LayerId`.

    Raises
    ------
    KeyError
        If `measure`, a model or any layer pair is missing from the table, or the measure's direction is
        unknown.
    ValueError
        If the matrix holds NaN or Inf, there are fewer than two layers, or `method` is unknown.
    """
    larger = larger_means_similar(measure, larger_is_similar)
    matrix = table.matrix(measure, models)
    return cluster(to_dissimilarity(matrix.values, larger), matrix.labels, measure, method)
