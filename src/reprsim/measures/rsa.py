"""Representational similarity analysis (RSA; Kriegeskorte et al. 2008) and distance correlation.

Each representation becomes an n x n dissimilarity matrix (RDM) that depends only on how the rows (words)
relate to one another, never on which neuron carries what; two representations are compared through their
RDMs. `rsa` offers four RDMs (``rdm``: correlation, cosine, Euclidean, squared Euclidean distance) and five
comparisons (``compare``: Pearson, Spearman, Kendall's tau-a, cosine, whitened cosine), as rsatoolbox
computes them (see `reprsim.measures.rsm`). The default, the correlation distance compared by Spearman, is the
classic RSA. `distance_correlation` (Szekely et al. 2007) compares double-centred Euclidean distance matrices.

A row with zero variance across its neurons has no Pearson correlation with anything, and a zero row no
cosine. Rather than produce NaN dissimilarities, `rsa` raises a ``ValueError`` naming such rows (their indices
in the input), so the caller decides whether to drop them from both representations. RDMs are n x n, so both
measures run on a seeded row subsample (default 5,000 rows).
"""

from __future__ import annotations

import math

from reprsim.arrays import ArrayLike
from reprsim.measures._subsample import as_subsampled_pair
from reprsim.measures.rsm import (
    centred_distances,
    check_rdm_options,
    compare_vectors,
    comparison_vector,
    rdm_upper,
)

_MIN_ROWS = 3  # fewer than 3 rows give at most one dissimilarity: no correlation of RDMs


def rsa(X: ArrayLike, Y: ArrayLike, max_rows: int | None = 5000, seed: int = 0, rdm: str = "correlation",
        compare: str = "spearman") -> float:
    """RSA: a comparison of the upper triangles of the RDMs of X and Y.

    By default the Spearman correlation of the ``1 - Pearson`` RDMs, with average ranks for ties;
    dissimilarities equal in exact arithmetic tie (see `reprsim.measures.rsm`). Symmetric; 1 for identical
    inputs. The default is invariant to permuting neurons and to isotropic scaling, not to rotations (Pearson
    centres each row across neurons); the cosine and Euclidean RDMs are also invariant to rotations.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q, ``n >= 3``.
    max_rows
        When ``n > max_rows``, both RDMs are built on the same ``max_rows`` rows drawn with `seed`;
        ``None`` uses all rows (n x n memory).
    seed
        Seed of the row subsample.
    rdm
        ``"correlation"`` (``1 - Pearson``), ``"cosine"`` (``1 - cos``), ``"euclidean"`` or
        ``"squared_euclidean"``.
    compare
        ``"pearson"``, ``"spearman"``, ``"tau_a"`` (Kendall's tau-a), ``"cosine"`` or ``"cosine_cov"``
        (rsatoolbox's whitened cosine; on the squared Euclidean RDM it equals linear CKA).

    Returns
    -------
    float
        The comparison, in [-1, 1].

    Raises
    ------
    ValueError
        For an unknown `rdm` or `compare` (listing the known ones), malformed input, fewer than 3 rows or an
        invalid `max_rows`; for rows with zero variance across neurons (correlation RDM) or rows of zeros
        (cosine RDM), named by their indices in the input so the caller can drop them from both X and Y; or
        when the comparison is undefined (every dissimilarity of X or of Y equal).

    Warns
    -----
    SubsampleWarning
        When it runs on a subsample.
    """
    check_rdm_options(rdm, compare)
    x, y, rows = as_subsampled_pair(X, Y, max_rows, seed, "rsa", min_rows=_MIN_ROWS)
    n = x.shape[0]
    a = comparison_vector(rdm_upper(x, rdm, "X", rows), compare, n, "X")
    b = comparison_vector(rdm_upper(y, rdm, "Y", rows), compare, n, "Y")
    return compare_vectors(a, b, compare)


def distance_correlation(X: ArrayLike, Y: ArrayLike, max_rows: int | None = 5000, seed: int = 0) -> float:
    """Distance correlation (Szekely, Rizzo & Bakirov 2007), the V-statistic of ``dcor.distance_correlation``.

    ``dCor = sqrt(dCov^2(X, Y) / sqrt(dVar^2(X) dVar^2(Y)))``, ``dCov^2`` the mean of the product of the two
    double-centred Euclidean distance matrices. Symmetric; 1 for identical inputs; 0 only for independent
    rows in the population; invariant to permuting neurons, orthogonal maps, shifts and isotropic scaling.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.
    max_rows
        When ``n > max_rows``, both distance matrices are built on the same ``max_rows`` rows drawn with
        `seed`; ``None`` uses all rows (n x n memory).
    seed
        Seed of the row subsample.

    Returns
    -------
    float
        The distance correlation, in [0, 1].

    Raises
    ------
    ValueError
        For malformed input or an invalid `max_rows`, or when every row of X or of Y is the same.

    Warns
    -----
    SubsampleWarning
        When it runs on a subsample.
    """
    x, y, _ = as_subsampled_pair(X, Y, max_rows, seed, "distance_correlation")
    return math.sqrt(max(compare_vectors(centred_distances(x, "X"), centred_distances(y, "Y"), "cosine"), 0.0))
