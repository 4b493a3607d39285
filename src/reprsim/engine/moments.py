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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from reprsim.arrays import ArrayLike, matrix_tensor, raise_non_finite

from .blocks import (
    PRECISIONS,
    BlockLayout,
    NormSums,
    PairSpec,
    Panel,
    Precision,
    RepresentationSums,
    check_precision,
    check_widths,
    moved_norm_sums,
    normalise_pairs,
    panel_norm_sums,
    resolve_device,
)

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
        self._buffer: torch.Tensor | None = None
        self._products: torch.Tensor | None = None

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
    def _zeros(self, *shape: int) -> torch.Tensor:
        """A float64 zero tensor on the device."""
        return self._layout.zeros(*shape)

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
    def _staging(self, rows: int) -> torch.Tensor:
        """The reusable stacked chunk buffer (rows x D) in the GEMM dtype."""
        if self._buffer is None or self._buffer.shape[0] < rows:
            self._buffer = None  # free the old one before allocating
            self._buffer = torch.empty(rows, sum(self._widths), dtype=self._gemm_dtype, device=self.device)
        return self._buffer[:rows]

    def _product_out(self, rows: int, cols: int) -> torch.Tensor:
        """A reusable contiguous rows x cols matrix for a float32 chunk product.

        One allocation per pass, not one per panel and chunk: per-chunk temporaries fragment the allocator's heap.
        """
        if self._products is None or self._products.numel() < rows * cols:
            self._products = None
            self._products = torch.empty(rows * cols, dtype=self._gemm_dtype, device=self.device)
        return self._products[: rows * cols].view(rows, cols)

    def release_buffers(self) -> None:
        """Free the staging buffers (a chunk of every representation); the next `update` allocates them again.

        Deriving measures does not need them, so `pair_results` frees them first to keep the peak low. The
        accumulated sums are untouched.
        """
        self._buffer = None
        self._products = None

    @property
    def _gemm_dtype(self) -> torch.dtype:
        """The dtype the chunks are staged and multiplied in."""
        return torch.float64 if self.precision == "float64" else torch.float32

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
        needed = self.needed()
        rows: int | None = None
        norms: list[torch.Tensor | None] = [None] * self.n_reps
        column_max: list[torch.Tensor | None] = [None] * self.n_reps
        shifts: list[torch.Tensor | None] = [None] * self.n_reps  # of the staged representations
        buffer: torch.Tensor | None = None
        count = 0
        for a, chunk in enumerate(chunks):
            count += 1
            if a >= self.n_reps:
                raise ValueError(f"update got more than {self.n_reps} chunks (one per representation)")
            if chunk is None:
                if needed[a]:
                    raise ValueError(f"{self._label(a, names)}: its chunk is needed but None was given")
                continue
            if not needed[a]:
                continue
            name = f"chunk of {self._label(a, names)}"
            x = matrix_tensor(chunk, name, device=self.device)
            rep = self._reps[a]
            if x.shape[1] != rep.width:
                raise ValueError(f"{name} has {x.shape[1]} columns, expected width {rep.width}")
            if rows is None:
                rows = int(x.shape[0])
                buffer = self._staging(rows)
            elif x.shape[0] != rows:
                raise ValueError(
                    f"{name} has {x.shape[0]} rows but an earlier representation's "
                    f"chunk has {rows}: chunks must hold the same rows (words) of every representation"
                )
            assert buffer is not None
            z = buffer[:, rep.offset : rep.offset + rep.width]
            absmax, shift = self._stage(rep, x, z, name)
            self._check_product_range(name, float((absmax + shift.abs()).max()), rows)
            shifts[a], column_max[a] = shift, None if rep.frozen else absmax
            del x
            if self.row_norms:
                wide = z if z.dtype == torch.float64 else z.to(torch.float64)
                norms[a] = (wide * wide).sum(dim=1)
        if count != self.n_reps:
            raise ValueError(f"update got {count} chunks, expected {self.n_reps} (one per representation)")
        if rows is None or buffer is None:
            return
        # Summed in the GEMM dtype (a cascade sum, far more accurate than the GEMMs): sum(dtype=float64) would
        # first copy the whole buffer to float64.
        column_sums = buffer.sum(dim=0).to(torch.float64)
        # Every chunk passed: only now does anything about the representations change.
        for a, rep in enumerate(self._reps):
            if shifts[a] is not None:
                rep.shift = shifts[a]
            largest = column_max[a]
            if largest is not None:
                self._add_sums(rep, column_sums[rep.offset : rep.offset + rep.width], largest, norms[a], rows)
        for panel in self._panels:
            if not panel.frozen:
                self._add_panel(panel, buffer, column_sums, norms, rows)

    @staticmethod
    def _label(a: int, names: Sequence[object] | None) -> str:
        """How errors name representation a: its given name, else its index."""
        return f"representation {a}" if names is None else f"representation {names[a]!r}"

    def _check_product_range(self, name: str, furthest: float, rows: int) -> None:
        """Refuse a chunk whose shifted values (at most ``furthest`` in size) could overflow the GEMM dtype.

        An entry of a cross-product block is a sum of `rows` products of two shifted values, so the bound
        rows x furthest^2 for every representation covers every block, the column sums and the shifted
        values themselves.
        """
        # The derivations square block entries (linear CKA sums p x q of them): keep rows x furthest^2 under
        # 2^480, so those squares stay far from float64's 2^1024 whatever the GEMM dtype.
        bound = rows * furthest * furthest
        if bound >= min(torch.finfo(self._gemm_dtype).max, 2.0**480):
            advice = (
                "use precision='float64'"
                if self.precision == "float32" and bound < 2.0**480
                else "rescale the values (every measure is invariant to isotropic scaling)"
            )
            raise ValueError(
                f"{name}: values up to {furthest:.3g} (minus the first chunk's column "
                f"means) could overflow {self.precision} cross-products over {rows} rows (or the float64 "
                f"derivations that square them); {advice}"
            )

    def _stage(
        self, rep: RepresentationSums, x: torch.Tensor, z: torch.Tensor, name: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the chunk's rows minus the shift into z (its columns of the staging buffer).

        Returns the column-wise max |x| and the shift subtracted, which `update` records only once every
        chunk has passed its checks. Rows that the GEMM dtype holds exactly (float16/bfloat16/float32 for
        float32 GEMMs, anything for float64) are copied and shifted in place when the shift is exact in that
        dtype too; others (float64 rows for float32 GEMMs, or a float64 shift taken over from a merged
        shard) are shifted in float64 first, so a large mean never costs the spread its digits.
        """
        shift = rep.shift
        in_place = z.dtype == torch.float64 or (
            x.dtype in (torch.float16, torch.bfloat16, torch.float32)
            and (shift is None or bool((shift.to(z.dtype).to(torch.float64) == shift).all()))
        )
        source = z.copy_(x) if in_place else x.to(torch.float64)
        low, high = torch.aminmax(source, dim=0)  # NaN propagates into both
        if not (bool(torch.isfinite(low).all()) and bool(torch.isfinite(high).all())):
            raise_non_finite(x, name, first_row=rep.n)
        if shift is None:
            shift = source.mean(dim=0, dtype=torch.float64)
            if in_place:  # the value subtracted is the one recorded, so that mean = shift + sum / n exactly
                shift = shift.to(z.dtype).to(torch.float64)
        if in_place:
            z.sub_(shift.to(z.dtype))
        else:
            z.copy_(source - shift)
        return torch.maximum(high, low.neg()).to(torch.float64), shift

    def _add_sums(
        self,
        rep: RepresentationSums,
        total: torch.Tensor,
        column_max: torch.Tensor,
        norms: torch.Tensor | None,
        rows: int,
    ) -> None:
        """Add one chunk's column sums, column max |x|, row-norm sum and row count to a representation."""
        rep.total = total.clone() if rep.total is None else rep.total + total
        rep.absmax = column_max if rep.absmax is None else torch.maximum(rep.absmax, column_max)
        if norms is not None:
            rep.norm_total += float(norms.sum())
        rep.n += rows

    def _add_panel(
        self,
        panel: Panel,
        buffer: torch.Tensor,
        column_sums: torch.Tensor,
        norms: Sequence[torch.Tensor | None],
        rows: int,
    ) -> None:
        """Add one chunk's products (one GEMM), column sums and row-norm sums to a panel."""
        rep_a = self._reps[panel.row]
        start = self._reps[panel.cols[0]].offset
        za = buffer[:, rep_a.offset : rep_a.offset + rep_a.width]
        zb = buffer[:, start : start + panel.width]  # a contiguous run of representations
        if self.precision == "float64":
            panel.product.addmm_(za.T, zb)
        else:  # float32 chunk product, added into the float64 sum
            panel.product.add_(torch.mm(za.T, zb, out=self._product_out(za.shape[1], zb.shape[1])))
        panel.row_total += column_sums[rep_a.offset : rep_a.offset + rep_a.width]
        panel.col_total += column_sums[start : start + panel.width]
        panel.n += rows
        self.multiply_adds += rows * rep_a.width * panel.width
        if self.row_norms:
            assert panel.norms_dot is not None and panel.row_norms_cols is not None
            assert panel.cols_norms_row is not None and panel.col_norm_totals is not None
            pa = norms[panel.row]
            assert pa is not None
            pb = torch.stack([norms[b] for b in panel.cols], dim=1)  # type: ignore[misc]
            panel.row_norm_total += float(pa.sum())
            panel.col_norm_totals += pb.sum(dim=0)
            panel.norms_dot += pa @ pb
            panel.row_norms_cols += (pa.to(zb.dtype) @ zb).to(torch.float64)
            panel.cols_norms_row += (za.T @ pb.to(za.dtype)).to(torch.float64)

    # --- reading -------------------------------------------------------------------------------------
    def _rep(self, a: int) -> RepresentationSums:
        """Representation a's sums, checked to exist and to have seen rows."""
        if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a < self.n_reps:
            raise ValueError(f"representation index {a!r} is not in 0..{self.n_reps - 1}")
        rep = self._reps[a]
        if rep.n == 0 or rep.total is None:
            raise ValueError(f"representation {a} has seen no rows yet; call update() first")
        return rep

    def _block(self, a: int, b: int) -> tuple[Panel, int, slice]:
        """Where block (a, b) lives (KeyError when it was not requested)."""
        return self._layout.block(a, b)

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
        panel, k, cols = self._block(a, b)
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

        The sums kept about the shifts are moved to the exact means (`reprsim.engine.blocks.moved_norm_sums`).

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
        deltas = [self._shift_difference(a, other) for a in range(self.n_reps)]
        for mine, theirs in zip(self._panels, other._panels, strict=True):
            if mine.frozen or theirs.frozen:
                if mine is not theirs:
                    raise ValueError(f"a block panel of representation {mine.row} is frozen but not shared")
            elif theirs.n:
                self._merge_panel(mine, theirs, deltas)
        for a, (mine_rep, theirs_rep) in enumerate(zip(self._reps, other._reps, strict=True)):
            if not mine_rep.frozen and theirs_rep.n:
                self._merge_rep(mine_rep, theirs_rep, deltas[a])
        self.multiply_adds += other.multiply_adds
        return self

    def _shift_difference(self, a: int, other: CrossMoments) -> torch.Tensor:
        """Delta = other's shift - this shift for representation a (zero when shared or unset)."""
        mine, theirs = self._reps[a], other._reps[a]
        if mine.frozen or theirs.frozen:
            if mine is not theirs:
                raise ValueError(f"representation {a} is frozen in one shard but not shared with the other")
            return self._zeros(mine.width)
        if theirs.shift is None:
            return self._zeros(mine.width)
        if mine.shift is None:
            mine.shift = theirs.shift.to(self.device).clone()
        return theirs.shift.to(self.device) - mine.shift

    def _merge_rep(self, mine: RepresentationSums, theirs: RepresentationSums, delta: torch.Tensor) -> None:
        """Add a shard's per-representation sums, moved by delta to this shift."""
        assert theirs.total is not None and theirs.absmax is not None
        total = theirs.total.to(self.device)
        mine.norm_total += theirs.norm_total + float(2.0 * total @ delta + theirs.n * delta.square().sum())
        total = total + theirs.n * delta
        absmax = theirs.absmax.to(self.device)
        mine.total = total if mine.total is None else mine.total + total
        mine.absmax = absmax if mine.absmax is None else torch.maximum(mine.absmax, absmax)
        mine.n += theirs.n

    def _merge_panel(self, mine: Panel, theirs: Panel, deltas: Sequence[torch.Tensor]) -> None:
        """Add a shard's panel, every block moved by its representations' deltas to these shifts."""
        n = theirs.n
        delta_a = deltas[mine.row]
        for k, b in enumerate(mine.cols):
            cols = slice(mine.col_starts[k], mine.col_starts[k] + self._widths[b])
            delta_b = deltas[b]
            s_a, s_b = theirs.row_total.to(self.device), theirs.col_total[cols].to(self.device)
            if self.row_norms:
                sums = panel_norm_sums(theirs, k, cols)
                moved = moved_norm_sums(NormSums.to(sums, self.device), delta_a, delta_b, n)
                assert mine.norms_dot is not None and mine.row_norms_cols is not None
                assert mine.cols_norms_row is not None and mine.col_norm_totals is not None
                mine.norms_dot[k] += moved.dot
                mine.row_norms_cols[cols] += moved.a_norms_b_cols
                mine.cols_norms_row[:, k] += moved.a_cols_b_norms
                mine.col_norm_totals[k] += sums.norm_total_b + 2.0 * (s_b @ delta_b) + n * (delta_b @ delta_b)
            block = theirs.product[:, cols].to(self.device)
            mine.product[:, cols] += (
                block + torch.outer(s_a, delta_b) + torch.outer(delta_a, s_b) + n * torch.outer(delta_a, delta_b)
            )
            mine.col_total[cols] += s_b + n * delta_b
        s_a = theirs.row_total.to(self.device)
        mine.row_norm_total += theirs.row_norm_total + float(2.0 * (s_a @ delta_a) + n * (delta_a @ delta_a))
        mine.row_total += s_a + n * delta_a
        mine.n += n

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
