"""Running cross-moments of many representations: one pass over row chunks gives every centred block.

Stack R representations side by side, Z = [X_1 | ... | X_R] (n rows, D = sum of widths d_a). Every linear
similarity measure of a pair (a, b) needs only n, the column sums and the cross-product block X_a^T X_b
(docs/design/engine.md), so `CrossMoments` streams row chunks once and keeps, in float64:

- per representation: a fixed per-column shift m_a (the first chunk's mean), the row count, the sum of the
  shifted rows s_a and the column-wise max |x| (for the constant-neuron test of the one-shot measures);
- per requested block a <= b: S_ab = sum over rows of (x_a - m_a)(x_b - m_b)^T, stored as row panels
  (one GEMM per representation a against a contiguous run of representations b, so a symmetric study
  costs half of Z^T Z);
- optionally (debiased CKA) the squared row norms p_a = |x_a - m_a|^2 and the sums p_a . p_b, p_a^T Z_b,
  Z_a^T p_b of each block.

The shift makes the centred block C_ab = S_ab - s_a s_b^T / n exact even when the column means are huge
relative to the spread (forming it from raw sums would cancel away most digits).

Moments are mergeable (`merge`: shards of rows, e.g. from parallel workers) and extendable
(`with_representations`: a new model's blocks against the old ones are formed in a pass that streams the
old chunks as well, while the old blocks are kept as they are).

Chunks are added by `reprsim.engine.staging` into the layout of `reprsim.engine.blocks`; the exact moves
between shifts (centred row-norm terms, merged shards) are `reprsim.engine.shifts`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from reprsim.arrays import ArrayLike

from .blocks import BlockLayout, Panel, RepresentationSums
from .checks import PRECISIONS, PairSpec, Precision, check_precision, check_widths, normalise_pairs, resolve_device
from .shifts import merge_shard, moved_norm_sums, panel_norm_sums
from .staging import ChunkBuffers, add_chunk, gemm_dtype

__all__ = ["PRECISIONS", "CrossMoments", "PairSpec", "Precision", "check_precision", "resolve_device"]


class CrossMoments:
    """Streaming float64 cross-moments of R representations, for the blocks a study asks for.

    Memory is the requested blocks (8 d_a d_b bytes each, see `nbytes`) plus one staged chunk of every
    representation; it does not depend on the number of rows.

    Parameters
    ----------
    widths
        d_1..d_R, the number of neurons (columns) of each representation.
    pairs
        ``"all"`` (every block a <= b, a symmetric half of Z^T Z) or (a, b) index pairs, in either order.
    device
        ``"auto"`` (CUDA if available, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    precision
        ``"float64"`` GEMMs, or ``"float32"`` GEMMs whose chunk products are added into float64 accumulators
        (faster, less exact). float16, bfloat16 and float32 rows are exact in float32 and shifted there;
        float64 rows are shifted in float64 first, so a large mean does not cost the spread its digits.
    row_norms
        Also keep the row-norm sums that debiased CKA needs (`centred_norm_product`).
    diagonal
        Keep the diagonal block (a, a) of every representation (every pair measure needs both of its own
        blocks); ``False`` is for tiled passes that already have them.

    Attributes
    ----------
    device
        The resolved torch device of the accumulators.
    precision
        The GEMM precision.
    row_norms
        Whether the row-norm sums are kept.
    multiply_adds
        Multiply-adds done by the block GEMMs so far (cost accounting).

    Raises
    ------
    ValueError
        If a width is not a positive integer, a pair is malformed or out of range, the device is unknown
        or CUDA is unavailable, or the precision is not one of ``"float64"``, ``"float32"``.

    Examples
    --------
    >>> m = CrossMoments([3, 2])
    >>> m.update([x_chunk, y_chunk])       # doctest: +SKIP  (the same rows of both representations)
    >>> m.centred(0, 1)                     # doctest: +SKIP  (3 x 2 centred cross-products X_c^T Y_c)
    """

    def __init__(
        self,
        widths: Sequence[int],
        pairs: PairSpec = "all",
        *,
        device: str | torch.device = "auto",
        precision: Precision = "float64",
        row_norms: bool = False,
        diagonal: bool = True,
    ) -> None:
        self._widths = check_widths(widths)
        self.device = resolve_device(device)
        self.precision = check_precision(precision)
        self.row_norms = bool(row_norms)
        self.multiply_adds = 0  # multiply-adds done by the block GEMMs so far (cost accounting, tests)
        self._layout = BlockLayout(
            self._widths, normalise_pairs(pairs, len(self._widths), diagonal), self.device, self.row_norms
        )
        self._buffers = ChunkBuffers(sum(self._widths), gemm_dtype(self.precision), self.device)

    @property
    def _reps(self) -> list[RepresentationSums]:
        """The per-representation sums."""
        return self._layout.reps

    @property
    def _panels(self) -> list[Panel]:
        """The block panels."""
        return self._layout.panels

    @property
    def _where(self) -> dict[tuple[int, int], tuple[Panel, int]]:
        """Block (a, b) -> its panel and start column."""
        return self._layout.where

    # --- structure -----------------------------------------------------------------------------------
    @property
    def widths(self) -> list[int]:
        """The width d_a of every representation (a copy)."""
        return list(self._widths)

    @property
    def n_reps(self) -> int:
        """The number of representations R."""
        return len(self._widths)

    @property
    def blocks(self) -> list[tuple[int, int]]:
        """Every stored block (a, b), a <= b, computed or pending, sorted."""
        return sorted(self._where)

    @property
    def pending_blocks(self) -> list[tuple[int, int]]:
        """Blocks that the next `update` calls accumulate (those not frozen by `with_representations`)."""
        return sorted(k for k, (panel, _) in self._where.items() if not panel.frozen)

    def has_block(self, a: int, b: int) -> bool:
        """Whether block (a, b) is stored, in either order.

        Parameters
        ----------
        a, b
            Representation indices.

        Returns
        -------
        bool
            True when (min(a, b), max(a, b)) was requested (computed or pending).
        """
        return (min(a, b), max(a, b)) in self._where

    def nbytes(self) -> int:
        """Bytes held by the block accumulators (the memory that grows with the number of blocks).

        Returns
        -------
        int
            The size of every panel's cross-product block (8 d_a d_b bytes per block).
        """
        return sum(p.product.numel() * p.product.element_size() for p in self._panels)

    def needed(self) -> list[bool]:
        """Which representations' chunks the next `update` uses (for their own sums or a pending block).

        Returns
        -------
        list of bool
            One flag per representation; `update` accepts ``None`` for a representation whose flag is False.
        """
        return self._layout.needed()

    # --- accumulation --------------------------------------------------------------------------------
    def release_buffers(self) -> None:
        """Free the staging buffers (a chunk of every representation); the next `update` allocates them again.

        Deriving measures does not need them, so `pair_results` frees them first to keep the peak low. The
        accumulated sums are untouched.
        """
        self._buffers.release()

    def update(self, chunks: Iterable[ArrayLike | None], names: Sequence[object] | None = None) -> None:
        """Add one chunk of rows: one array (rows x d_a) per representation, the same rows in each.

        Any real dtype is accepted (numpy, torch, anything array-like). Rows minus a fixed per-column shift
        (the first chunk's mean) are multiplied in the GEMM dtype (float16 and bfloat16 rows are exact in
        float32) and the products are summed in float64. Nothing is recorded unless every chunk passes its
        checks.

        Parameters
        ----------
        chunks
            One entry per representation, consumed lazily (a generator reading one representation at a time
            keeps only one representation's raw chunk alive). An entry may be ``None`` for a representation
            that no pending block or sum needs (see `needed`; e.g. old models not paired with a new one after
            `with_representations`).
        names
            One name per representation, used in errors (default: the indices).

        Raises
        ------
        ValueError
            If `chunks` has more or fewer entries than representations, a needed entry is ``None``, a chunk
            is not a real 2-D array, has the wrong width or a different row count from the others, holds
            NaN or Inf (the message gives the bad value's row in the whole stream, not just in the chunk),
            or has values so large that the cross-products could overflow.
        """
        self.multiply_adds += add_chunk(self._layout, self._buffers, self.precision, chunks, names)

    # --- reading -------------------------------------------------------------------------------------
    def _rep(self, a: int) -> RepresentationSums:
        """Representation a's sums, checked to exist and to have seen rows."""
        if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a < self.n_reps:
            raise ValueError(f"representation index {a!r} is not in 0..{self.n_reps - 1}")
        rep = self._reps[a]
        if rep.n == 0 or rep.total is None:
            raise ValueError(f"representation {a} has seen no rows yet; call update() first")
        return rep

    def n_rows(self, a: int | None = None) -> int:
        """Rows seen by one representation, or by all of them.

        Parameters
        ----------
        a
            A representation index; ``None`` for the count all representations share.

        Returns
        -------
        int
            The number of rows added (0 before the first `update`).

        Raises
        ------
        ValueError
            If `a` is not a representation index, or (for ``None``) the representations saw different counts.
        """
        if a is not None:
            if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a < self.n_reps:
                raise ValueError(f"representation index {a!r} is not in 0..{self.n_reps - 1}")
            return self._reps[a].n
        counts = {r.n for r in self._reps}
        if len(counts) != 1:
            raise ValueError(f"representations saw different row counts: {sorted(counts)}")
        return counts.pop()

    def _checked_block(self, a: int, b: int) -> tuple[Panel, int, slice]:
        """Block (a, b), checked to have seen the same rows (at least 2) as both its representations."""
        rep_a, rep_b = self._rep(a), self._rep(b)
        panel, k, cols = self._layout.block(a, b)  # KeyError when not requested
        if not rep_a.n == rep_b.n == panel.n:
            raise ValueError(
                f"block ({a}, {b}) saw {panel.n} rows but representations {a} and {b} saw {rep_a.n} and "
                f"{rep_b.n}: every pass must stream the same rows"
            )
        if panel.n < 2:
            raise ValueError(f"need at least 2 rows to centre, got {panel.n}")
        return panel, k, cols

    def mean(self, a: int) -> torch.Tensor:
        """Column means of one representation.

        Parameters
        ----------
        a
            The representation index.

        Returns
        -------
        torch.Tensor
            (d_a,) float64 means, exact to rounding (the shift plus the mean of the shifted rows).

        Raises
        ------
        ValueError
            If `a` is not a representation index or it has seen no rows.
        """
        rep = self._rep(a)
        assert rep.shift is not None and rep.total is not None
        return rep.shift + rep.total / rep.n

    def column_absmax(self, a: int) -> torch.Tensor:
        """Column-wise max |x| of one representation (for the constant-neuron test).

        Parameters
        ----------
        a
            The representation index.

        Returns
        -------
        torch.Tensor
            (d_a,) float64 maxima of the unshifted values.

        Raises
        ------
        ValueError
            If `a` is not a representation index or it has seen no rows.
        """
        rep = self._rep(a)
        assert rep.absmax is not None
        return rep.absmax

    def centred(self, a: int, b: int) -> torch.Tensor:
        """The centred cross-product block C_ab = X_a,c^T X_b,c (not divided by n - 1).

        Formed as S_ab - s_a s_b^T / n about the shifts, which stays exact when the means are large.

        Parameters
        ----------
        a, b
            Representation indices, in either order (a > b gives the transpose of block (b, a)).

        Returns
        -------
        torch.Tensor
            d_a x d_b, float64.

        Raises
        ------
        KeyError
            If the block was not requested.
        ValueError
            If an index is out of range, a representation has seen no rows, the block saw other rows than its
            representations (every pass must stream the same rows), or fewer than 2 rows were seen.
        """
        panel, _, cols = self._checked_block(a, b)
        row = panel.row_total
        block = panel.product[:, cols] - torch.outer(row, panel.col_total[cols]) / panel.n
        return block.T if a > b else block

    def centred_norm_product(self, a: int, b: int) -> float:
        """The row-norm term of the unbiased HSIC of a pair: sum_i |x_a,i - mean_a|^2 |x_b,i - mean_b|^2.

        The sums kept about the shifts are moved to the exact means (`reprsim.engine.shifts.moved_norm_sums`).

        Parameters
        ----------
        a, b
            Representation indices, in either order (``a == b`` gives sum_i |x_a,i - mean_a|^4).

        Returns
        -------
        float
            The sum over rows.

        Raises
        ------
        ValueError
            If the moments were made without ``row_norms=True``, or for the reasons `centred` gives.
        KeyError
            If the block was not requested.
        """
        if not self.row_norms:
            raise ValueError("centred_norm_product needs CrossMoments(..., row_norms=True)")
        panel, k, cols = self._checked_block(a, b)
        sums = panel_norm_sums(panel, k, cols)
        n = panel.n
        return float(moved_norm_sums(sums, -sums.total_a / n, -sums.total_b / n, n).dot)

    # --- combining -----------------------------------------------------------------------------------
    def merge(self, other: CrossMoments) -> CrossMoments:
        """Add another shard's rows into these moments, in place.

        The shards may have different shifts: the other's sums are re-expressed about this one's shift
        exactly (binomial expansion) before adding, so the result equals one pass over all rows up to
        rounding.

        Parameters
        ----------
        other
            Moments of other rows with the same widths, blocks and ``row_norms`` (on any device).
            Accumulators frozen by `with_representations` must be the very same (shared) objects.

        Returns
        -------
        CrossMoments
            ``self``.

        Raises
        ------
        ValueError
            If `other` is not a `CrossMoments`, its widths, blocks or ``row_norms`` differ, or a frozen
            accumulator is not shared between the two.
        """
        if not isinstance(other, CrossMoments):
            raise ValueError(f"can only merge CrossMoments, got {type(other).__name__}")
        if other._widths != self._widths or sorted(other._where) != sorted(self._where):
            raise ValueError("cannot merge CrossMoments with different widths or blocks")
        if other.row_norms != self.row_norms:
            raise ValueError("cannot merge CrossMoments with and without row_norms")
        merge_shard(self._layout, other._layout)
        self.multiply_adds += other.multiply_adds
        return self

    def with_representations(self, widths: Sequence[int], pairs: PairSpec = "all") -> CrossMoments:
        """Moments for these representations plus new ones, of which only the new blocks get computed.

        The returned object shares (and freezes) every existing accumulator, so these moments can no longer
        be updated. Feed it chunks of all representations (an old one may be ``None`` when no pending block
        needs it, see `needed`); the rows must be the same as before, which is checked by row count when a
        block is read.

        Parameters
        ----------
        widths
            Widths of the new representations, numbered after the old ones.
        pairs
            The new pending blocks: ``"all"`` (every block that involves a new representation), or (a, b)
            pairs in global indices, of which those involving a new representation are kept; the new diagonal
            blocks are always added.

        Returns
        -------
        CrossMoments
            Moments of ``n_reps + len(widths)`` representations, whose `pending_blocks` are the new blocks.

        Raises
        ------
        ValueError
            If a new width is not a positive integer, or a pair is malformed or out of range.
        """
        new_widths = check_widths(widths, "new widths")
        old = self.n_reps
        total = old + len(new_widths)
        if isinstance(pairs, str):
            if pairs != "all":
                raise ValueError(f"pairs must be 'all' or a list of (a, b) index pairs, got {pairs!r}")
            blocks = [(a, b) for a in range(total) for b in range(max(a, old), total)]
        else:
            blocks = [p for p in normalise_pairs(pairs, total, diagonal=False) if p[1] >= old]
            blocks += [(a, a) for a in range(old, total)]
        grown = CrossMoments(
            self._widths + new_widths,
            [],
            device=self.device,
            precision=self.precision,
            row_norms=self.row_norms,
            diagonal=False,
        )
        grown._layout = self._layout.extended(new_widths)
        grown._layout.add_blocks(blocks)
        return grown
