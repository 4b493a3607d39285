"""One pair's terms for the engine's measures: its cross block and the intermediates several measures share.

`PairTerms` holds two `LinearFit`s and their centred cross block C_xy and caches, on first use, the whitened
cross block (coherence), its canonical decomposition and correlations. The decomposition helpers here are
the eigendecomposition-based SVDs the derivations use (`reprsim.engine.linear_score`,
`reprsim.engine.block_score`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from .linear_fit import LinearFit


def singular_values(matrix: torch.Tensor, what: str) -> torch.Tensor:
    """Singular values of a matrix (ValueError naming `what` when the SVD fails)."""
    try:
        s = torch.linalg.svdvals(matrix)
    except torch.linalg.LinAlgError as exc:
        raise ValueError(f"the SVD of {what} did not converge ({exc})") from exc
    if not bool(torch.isfinite(s).all()):
        raise ValueError(f"the SVD of {what} returned non-finite values")
    return s


@dataclass(frozen=True)
class CanonicalDecomposition:
    """SVD of the whitened cross block K = W_x C_xy W_y^T = U diag(rho) V^T.

    Parameters
    ----------
    u
        rank_x x m: X's canonical directions in its orthonormal coordinates.
    rho
        (m,) the canonical correlations, descending, unclipped.
    v
        rank_y x m: Y's canonical directions.
    """

    u: torch.Tensor
    rho: torch.Tensor
    v: torch.Tensor


# Below this canonical correlation, the partner singular vector K^T u / rho loses accuracy (rounding / rho);
# such pairs get their own eigendecomposition instead.
_SMALL_RHO = 1e-6


def gram_eigen(gram: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending, clipped at 0) and eigenvectors of a Gram matrix K K^T."""
    try:
        values, vectors = torch.linalg.eigh(gram)
    except torch.linalg.LinAlgError as exc:
        raise ValueError(f"the eigendecomposition of {what} did not converge ({exc})") from exc
    if not (bool(torch.isfinite(values).all()) and bool(torch.isfinite(vectors).all())):
        raise ValueError(f"the eigendecomposition of {what} returned non-finite values")
    return values.flip(0).clamp(min=0.0), vectors.flip(1)


def gram_singular_values(matrix: torch.Tensor, what: str) -> torch.Tensor:
    """Singular values of a matrix from the eigenvalues of its smaller Gram matrix (descending).

    Twice as fast as an SVD for the matrices here; a singular value s comes out with absolute error about
    eps / s (1e-8 at worst, for s near 0), far below what a mean over hundreds of them resolves.
    """
    gram = matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix
    try:
        values = torch.linalg.eigvalsh(gram)
    except torch.linalg.LinAlgError as exc:
        raise ValueError(f"the eigendecomposition of {what} did not converge ({exc})") from exc
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"the eigendecomposition of {what} returned non-finite values")
    return values.flip(0).clamp(min=0.0).sqrt()


def canonical_decomposition(k: torch.Tensor, what: str) -> CanonicalDecomposition:
    """U, rho, V of K from the eigendecomposition of its smaller Gram matrix (about twice as fast as an SVD).

    The other side's vectors are K^T u / rho; when some rho is below 1e-6 they would be inaccurate, and
    the other Gram matrix is decomposed too, its vectors signed so that u_k^T K v_k >= 0.
    """
    transposed = k.shape[0] > k.shape[1]
    small = k.T if transposed else k  # m x r, m <= r
    values, first = gram_eigen(small @ small.T, what)
    rho = values.sqrt()
    if bool((rho > _SMALL_RHO).all()):
        second = (small.T @ first) / rho
    else:
        # Pair each vector with its partner's sign (u^T K v = +rho): the gradients of the linearised
        # jackknife read the products u v^T, not only |u| or |v|.
        second = gram_eigen(small.T @ small, what)[1][:, : rho.numel()]
        signs = torch.where(((small.T @ first) * second).sum(dim=0) < 0, -1.0, 1.0).to(second)
        second = second * signs
    return CanonicalDecomposition(second, rho, first) if transposed else CanonicalDecomposition(first, rho, second)


class PairTerms:
    """One pair's cross block with the intermediates its measures share, computed on first use.

    Parameters
    ----------
    x, y
        The two representations' fits.
    cross
        C_xy = X_c^T Y_c (p x q), on the same scale as their covariances.
    norm_product
        sum_i |x_i - mean_x|^2 |y_i - mean_y|^2 (only debiased CKA needs it).

    Raises
    ------
    ValueError
        If `cross` is not p x q for the two fits' widths, or the fits have different row counts.
    """

    def __init__(
        self,
        x: LinearFit,
        y: LinearFit,
        cross: torch.Tensor,
        norm_product: float | None = None,
    ) -> None:
        if tuple(cross.shape) != (x.width, y.width):
            raise ValueError(
                f"cross block has shape {tuple(cross.shape)}, expected ({x.width}, {y.width}) for {x.name} x {y.name}"
            )
        if x.n != y.n:
            raise ValueError(f"{x.name} and {y.name} have different row counts: {x.n} and {y.n}")
        self.x, self.y = x, y
        self.cross = cross.to(torch.float64)
        self.norm_product = norm_product

    @property
    def n(self) -> int:
        """The number of rows (shared by both fits)."""
        return self.x.n

    @cached_property
    def varying_cross(self) -> torch.Tensor:
        """C_xy restricted to the varying neurons of both sides."""
        return self.x.on_varying(self.cross, self.y)

    @cached_property
    def neuron_correlations(self) -> torch.Tensor:
        """Pearson correlations of the varying neurons, clipped to [-1, 1] (maxsim and both matchings share them)."""
        return (self.varying_cross / torch.outer(self.x.varying_scale, self.y.varying_scale)).clamp(-1.0, 1.0)

    @cached_property
    def cross_nuclear_norm(self) -> float:
        """``||C_xy||_*``, the sum of the cross block's singular values (Procrustes and Bures share it)."""
        return float(singular_values(self.varying_cross, "X^T Y").sum())

    @cached_property
    def cross_decomposition(self) -> CanonicalDecomposition:
        """U, s, V of C_xy over the varying neurons (the Procrustes rotation U V^T and its gradients use it)."""
        return canonical_decomposition(self.varying_cross, f"X^T Y of {self.x.name} and {self.y.name}")

    @cached_property
    def regressed_on_y(self) -> torch.Tensor:
        """C_xy W_y^T (varying x rank_y): X's neurons in Y's orthonormal coordinates.

        Its squared row norms are the variance of each X neuron that a linear fit from Y explains.
        """
        return self.varying_cross @ self.y.whitener.T

    @cached_property
    def regressed_on_x(self) -> torch.Tensor:
        """C_yx W_x^T (varying y x rank_x): Y's neurons in X's orthonormal coordinates."""
        return self.varying_cross.T @ self.x.whitener.T

    @cached_property
    def coherence(self) -> torch.Tensor:
        """K = W_x C_xy W_y^T (rank_x x rank_y): its singular values are the canonical correlations."""
        return self.x.whitener @ self.regressed_on_y

    @cached_property
    def canonical(self) -> CanonicalDecomposition:
        """Canonical directions and correlations (U, rho, V) of the pair."""
        return canonical_decomposition(self.coherence, self._what)

    @cached_property
    def correlations(self) -> torch.Tensor:
        """Canonical correlations, descending, clipped to [0, 1] (m = min(rank X, rank Y) of them)."""
        if "canonical" in self.__dict__:
            rho = self.canonical.rho
        else:
            rho = gram_singular_values(self.coherence, self._what)
        return rho.clamp(0.0, 1.0)

    @property
    def _what(self) -> str:
        """How errors name the whitened cross block."""
        return f"the whitened cross-covariance of {self.x.name} and {self.y.name}"
