"""Hierarchical clustering of models and of layers (average linkage on a symmetric dissimilarity).

Dissimilarity = 1 - symmetric similarity for similarity measures, the symmetrised distance itself for
distance measures (measures.md, "From layers to models"). Directed measures are symmetrised by averaging
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
    """A hierarchical clustering: scipy linkage matrix, the leaves' labels, and the dissimilarities used."""

    measure: str
    method: str
    labels: tuple[str, ...] | tuple[LayerId, ...]
    linkage: np.ndarray
    dissimilarity: np.ndarray  # square, zero diagonal, rows/columns in `labels` order

    def groups(self, n_groups: int) -> list[int]:
        """Cluster number (1..n_groups) of each label when the tree is cut into `n_groups` clusters."""
        if not 1 <= n_groups <= len(self.labels):
            raise ValueError(f"n_groups must be between 1 and {len(self.labels)}, got {n_groups}")
        return [int(g) for g in fcluster(self.linkage, t=n_groups, criterion="maxclust")]


def to_dissimilarity(values: np.ndarray, larger_is_similar: bool) -> np.ndarray:
    """Symmetrise a square matrix and turn it into a dissimilarity with an exact zero diagonal.

    The diagonal is set to 0 by definition (an item's distance to itself), not taken from the data.
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
    """Hierarchical clustering of items from a square dissimilarity matrix."""
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
    """Cluster models on 1 - symmetrised model-to-model similarity (or the model-to-model distance)."""
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
    """Cluster every layer of `models` on 1 - symmetric layer similarity (needs within-model pairs too)."""
    larger = larger_means_similar(measure, larger_is_similar)
    matrix = table.matrix(measure, models)
    return cluster(to_dissimilarity(matrix.values, larger), matrix.labels, measure, method)
