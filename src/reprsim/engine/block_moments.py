"""Cross-moments kept per sentence block in the one pass, for resampling the linear measures without re-reading rows.

`BlockedMoments` routes every chunk's rows to G `CrossMoments`, one per contiguous block of whole sentences
(`reprsim.inference.sentence_blocks`), all about the same per-column shift (the first chunk's mean). With
one shift, every sum is additive over blocks: the moments of any reweighting w of the blocks are
``sum_g w_g (sums of block g)``, and `MomentSums` reads centred blocks, means and the row-norm terms of
debiased CKA from such a combination exactly as `CrossMoments` does from its own sums. The delete-one-block
jackknife reads ``total - block g``; the exact bootstrap of linear CKA (`cka_bootstrap_hsic`) needs only
G x G inner products of the blocks.

Memory is G + 1 times the blocks of a plain pass (`BlockedMoments.nbytes`), which is why the scheduler's
budget counts it and tiles the study into more passes when it must.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reprsim.arrays import ArrayLike

from .checks import Precision
from .moments import CrossMoments
from .shifts import NormSums, moved_norm_sums, panel_norm_sums


@dataclass
class _RepSums:
    """One representation's additive sums about the shared shift."""

    n: float
    total: torch.Tensor
    norm_total: float
    absmax: torch.Tensor
    shift: torch.Tensor


@dataclass
class _BlockSums:
    """One block (a, b), a <= b: sum z_a z_b^T and, with row norms, the sums of `NormSums`."""

    cross: torch.Tensor
    dot: torch.Tensor | None
    a_norms_b_cols: torch.Tensor | None
    a_cols_b_norms: torch.Tensor | None


class MomentSums:
    """Additive sums of some rows (or a signed/weighted combination of row blocks), read like `CrossMoments`.

    Supports what `LinearFit.from_moments` and a pair's terms read: `centred`, `mean`, `n_rows`,
    `column_absmax`, `centred_norm_product` and `row_norms`.

    Parameters
    ----------
    reps
        Per-representation sums, by index.
    blocks
        Per-block sums, keyed (a, b) with a <= b.
    row_norms
        Whether the row-norm sums are kept.
    """

    def __init__(self, reps: dict[int, _RepSums], blocks: dict[tuple[int, int], _BlockSums], row_norms: bool) -> None:
        self.reps, self.blocks, self.row_norms = reps, blocks, row_norms

    @classmethod
    def of(cls, moments: CrossMoments) -> MomentSums:
        """The sums held by a `CrossMoments` (views, not copies)."""
        layout = moments._layout
        reps = {a: _RepSums(float(r.n), r.total, r.norm_total, r.absmax, r.shift)  # type: ignore[arg-type]
                for a, r in enumerate(layout.reps) if r.total is not None}
        blocks = {}
        for a, b in moments.blocks:
            panel, k, cols = layout.block(a, b)
            if moments.row_norms:
                ns = panel_norm_sums(panel, k, cols)
                blocks[a, b] = _BlockSums(ns.cross, ns.dot, ns.a_norms_b_cols, ns.a_cols_b_norms)
            else:
                blocks[a, b] = _BlockSums(panel.product[:, cols], None, None, None)
        return cls(reps, blocks, moments.row_norms)

    @staticmethod
    def combine(parts: Sequence[MomentSums], weights: Sequence[float]) -> MomentSums:
        """sum_g w_g parts[g] (new tensors); the column max |x| is the largest over parts with w_g != 0."""
        used = [(p, float(w)) for p, w in zip(parts, weights, strict=True) if w != 0]
        first = used[0][0]

        def add(get: Callable[[MomentSums], Any]) -> Any:
            out = None
            for p, w in used:
                value = get(p)
                out = value * w if out is None else out + value * w
            return out

        reps = {}
        for a, r in first.reps.items():
            absmax = torch.stack([p.reps[a].absmax for p, _ in used]).amax(dim=0)
            total = sum((p.reps[a].total * w for p, w in used[1:]), used[0][0].reps[a].total * used[0][1])
            reps[a] = _RepSums(sum(p.reps[a].n * w for p, w in used), total,
                               sum(p.reps[a].norm_total * w for p, w in used), absmax, r.shift)
        blocks = {}
        for key in first.blocks:
            def field(name: str, key: tuple[int, int] = key) -> Any:
                return None if getattr(first.blocks[key], name) is None else add(
                    lambda p: getattr(p.blocks[key], name))
            blocks[key] = _BlockSums(field("cross"), field("dot"), field("a_norms_b_cols"), field("a_cols_b_norms"))
        return MomentSums(reps, blocks, first.row_norms)

    def minus(self, other: MomentSums) -> MomentSums:
        """These sums less another's (a block left out); the column max |x| is kept (conservative)."""
        reps = {a: _RepSums(r.n - other.reps[a].n, r.total - other.reps[a].total,
                            r.norm_total - other.reps[a].norm_total, r.absmax, r.shift) for a, r in self.reps.items()}
        blocks = {}
        for key, s in self.blocks.items():
            o = other.blocks[key]
            blocks[key] = _BlockSums(s.cross - o.cross, *(None if x is None else x - y  # type: ignore[operator]
                                                           for x, y in ((s.dot, o.dot),
                                                                        (s.a_norms_b_cols, o.a_norms_b_cols),
                                                                        (s.a_cols_b_norms, o.a_cols_b_norms))))
        return MomentSums(reps, blocks, self.row_norms)

    # --- reading, as CrossMoments ---------------------------------------------------------------------
    def n_rows(self, a: int) -> int:
        """Rows summed for representation a."""
        return round(self.reps[a].n)

    def mean(self, a: int) -> torch.Tensor:
        """(d_a,) column means."""
        r = self.reps[a]
        return r.shift + r.total / r.n

    def column_absmax(self, a: int) -> torch.Tensor:
        """(d_a,) column-wise max |x| of the rows summed."""
        return self.reps[a].absmax

    def centred(self, a: int, b: int) -> torch.Tensor:
        """C_ab = S_ab - s_a s_b^T / n about the shared shift."""
        lo, hi = min(a, b), max(a, b)
        n = self.reps[lo].n
        if n < 2:
            raise ValueError(f"fewer than 2 rows ({n:g}) for block ({a}, {b})")
        block = self.blocks[lo, hi].cross - torch.outer(self.reps[lo].total, self.reps[hi].total) / n
        return block.T if a > b else block

    def centred_norm_product(self, a: int, b: int) -> float:
        """sum_i |x_a,i - mean_a|^2 |x_b,i - mean_b|^2 over the rows summed."""
        if not self.row_norms:
            raise ValueError("centred_norm_product needs row norms")
        lo, hi = min(a, b), max(a, b)
        s, ra, rb = self.blocks[lo, hi], self.reps[lo], self.reps[hi]
        assert s.dot is not None and s.a_norms_b_cols is not None and s.a_cols_b_norms is not None
        sums = NormSums(cross=s.cross, total_a=ra.total, total_b=rb.total, norm_total_a=ra.norm_total,
                        norm_total_b=rb.norm_total, dot=s.dot, a_norms_b_cols=s.a_norms_b_cols,
                        a_cols_b_norms=s.a_cols_b_norms)
        return float(moved_norm_sums(sums, -ra.total / ra.n, -rb.total / rb.n, round(ra.n)).dot)


class BlockedMoments:
    """One pass's cross-moments kept per contiguous row block, all about one shift.

    Parameters
    ----------
    widths
        d_1..d_R.
    pairs
        (a, b) blocks to keep (as `CrossMoments`; diagonal blocks must be listed).
    bounds
        (G + 1,) row offsets of the blocks (`reprsim.inference.sentence_blocks`).
    device, precision, row_norms
        As `CrossMoments`.

    Attributes
    ----------
    parts
        The G per-block `CrossMoments`.
    rows_seen
        Rows added so far.
    """

    def __init__(self, widths: Sequence[int], pairs: Sequence[tuple[int, int]], bounds: np.ndarray, *,
                 device: torch.device, precision: Precision, row_norms: bool) -> None:
        self.bounds = np.asarray(bounds, dtype=np.int64)
        self.parts = [CrossMoments(widths, list(pairs), device=device, precision=precision, row_norms=row_norms,
                                   diagonal=False) for _ in range(len(self.bounds) - 1)]
        # The blocks see the pass's chunks one after another: one staging buffer serves them all (G buffers
        # would each be as large as a plain pass's and would stay cold).
        for part in self.parts[1:]:
            part._buffers = self.parts[0]._buffers
        self.row_norms = row_norms
        self.rows_seen = 0
        self._total: MomentSums | None = None
        self._sums: list[MomentSums] | None = None

    @property
    def n_blocks(self) -> int:
        """G."""
        return len(self.parts)

    @property
    def multiply_adds(self) -> int:
        """Multiply-adds of every block's GEMMs."""
        return sum(p.multiply_adds for p in self.parts)

    def needed(self) -> list[bool]:
        """Which representations the blocks need (as `CrossMoments.needed`)."""
        return self.parts[0].needed()

    def update(self, chunks: Iterable[ArrayLike | None], names: Sequence[object] | None = None) -> None:
        """Add one chunk of rows (one array per representation), split at the block boundaries.

        Raises
        ------
        ValueError
            If the rows run past the last block, or as `CrossMoments.update`.
        """
        arrays = list(chunks)
        rows = next((int(np.shape(c)[0]) for c in arrays if c is not None), 0)
        start, end = self.rows_seen, self.rows_seen + rows
        if end > self.bounds[-1]:
            raise ValueError(f"the rows run past the sentence blocks ({self.bounds[-1]} rows): the store's "
                             "sentence lengths do not match its rows")
        g = int(np.searchsorted(self.bounds, start, side="right")) - 1
        while start < end:
            stop = min(end, int(self.bounds[g + 1]))
            lo, hi = start - self.rows_seen, stop - self.rows_seen
            self.parts[g].update([None if c is None else c[lo:hi] for c in arrays], names=names)
            self._share_shift(g)
            start = stop
            if start == self.bounds[g + 1]:
                g += 1
        self.rows_seen = end

    def _share_shift(self, g: int) -> None:
        """Give every later block the shift block g set (before any of them sees a row)."""
        source = self.parts[g]._layout.reps
        for part in self.parts[g + 1:]:
            for rep, src in zip(part._layout.reps, source, strict=True):
                if rep.shift is None and src.shift is not None:
                    rep.shift = src.shift

    def release_buffers(self) -> None:
        """Free every block's staging buffers."""
        for p in self.parts:
            p.release_buffers()

    def finish(self) -> None:
        """Check that every block saw its rows, and form the totals.

        Raises
        ------
        ValueError
            If the pass ended before the last block.
        """
        if self.rows_seen != int(self.bounds[-1]):
            raise ValueError(f"the pass gave {self.rows_seen} rows but the sentence blocks cover {self.bounds[-1]}: "
                             "the store's sentence lengths do not match its rows")
        self._sums = [MomentSums.of(p) for p in self.parts]
        self._total = MomentSums.combine(self._sums, [1.0] * self.n_blocks)

    @property
    def block_sums(self) -> list[MomentSums]:
        """The G blocks' sums (after `finish`)."""
        assert self._sums is not None, "finish() first"
        return self._sums

    @property
    def total(self) -> MomentSums:
        """The sums of every row (after `finish`)."""
        assert self._total is not None, "finish() first"
        return self._total

    def leave_one_out(self, g: int) -> MomentSums:
        """The sums of every row outside block g."""
        return self.total.minus(self.block_sums[g])

    def left_out_changes(self, a: int, b: int, matrices: torch.Tensor) -> torch.Tensor:
        """<M_k, C_ab - C_ab without block g> for K matrices and every block g, exactly and without forming C^(-g).

        With mu, nu the means, s_g, n_g block g's sums and e_g = s_g / n_g - mu, the change is
        D_g + n_g^2 / (n - n_g) e_a,g e_b,g^T, where D_g = S_g - s_a,g nu^T - mu s_b,g^T + n_g mu nu^T is the
        block's cross-product about the means of all rows: G inner products with the blocks (one block copied at a
        time), no d x d work per g.

        Parameters
        ----------
        a, b
            The block's representations (either order).
        matrices
            (K, d_a, d_b).

        Returns
        -------
        torch.Tensor
            (K, G) float64.
        """
        if a > b:
            return self.left_out_changes(b, a, matrices.transpose(1, 2))
        parts, total = self.block_sums, self.total
        m = matrices.to(torch.float64)
        k, n = m.shape[0], total.reps[a].n
        mu, nu = (total.reps[r].total.to(m) / n for r in (a, b))
        sa = torch.stack([p.reps[a].total for p in parts]).to(m)
        sb = torch.stack([p.reps[b].total for p in parts]).to(m)
        counts = torch.tensor([p.reps[a].n for p in parts], dtype=m.dtype, device=m.device)
        m_nu, mu_m = m @ nu, mu @ m                                   # (K, d_a), (K, d_b)
        flat = m.reshape(k, -1)
        inner = torch.stack([flat @ p.blocks[a, b].cross.to(m).reshape(-1) for p in parts], dim=1)
        change = inner - m_nu @ sa.T - mu_m @ sb.T + (m_nu @ mu)[:, None] * counts
        ea, eb = sa / counts[:, None] - mu, sb / counts[:, None] - nu
        mean_shift = ((m @ eb.T) * ea.T[None]).sum(dim=1) * (counts**2 / (n - counts))
        return change + mean_shift

    def weighted(self, weights: Sequence[float]) -> MomentSums:
        """sum_g w_g (block g's sums): a bootstrap replicate's moments for integer multiplicities."""
        return MomentSums.combine(self.block_sums, weights)

    @classmethod
    def from_parts(cls, parts: dict[int, CrossMoments], bounds: np.ndarray, *,
                   what: str = "the shards") -> BlockedMoments:
        """Blocked moments put together from every block's moments, accumulated elsewhere (row shards, merged).

        Each block's moments may be about any shift (a shard's own); every block is re-expressed about block
        0's (exactly, as `CrossMoments.merge` does), which `MomentSums` needs to add blocks.

        Parameters
        ----------
        parts
            Block index -> that block's moments over all its rows (`merge_block_parts` of the shards'
            `shard_block_parts`). It is emptied as the blocks are taken, so that the parts and the result
            are not held whole at once.
        bounds
            (G + 1,) row offsets of the blocks.
        what
            How errors name the source.

        Returns
        -------
        BlockedMoments
            Finished blocked moments, read as those of one pass are.

        Raises
        ------
        ValueError
            If a block is missing or has not all its rows, or the blocks' widths or pairs differ.
        """
        bounds = np.asarray(bounds, dtype=np.int64)
        count = len(bounds) - 1
        missing = [g for g in range(count) if g not in parts]
        if missing or len(parts) != count:
            raise ValueError(f"{what}: sentence blocks {missing or sorted(set(parts) - set(range(count)))} are "
                             f"missing or unknown (there are {count})")
        first = parts[0]
        widths, blocks, shifts = first.widths, first.blocks, [r.shift for r in first._layout.reps]
        taken: list[CrossMoments] = []
        for g in range(count):
            part = parts.pop(g)
            if part.widths != widths or sorted(part.blocks) != sorted(blocks):
                raise ValueError(f"{what}: sentence block {g} holds other representations or pairs than block 0")
            rows = int(bounds[g + 1] - bounds[g])
            if any(r.n != rows for r in part._layout.reps):
                raise ValueError(f"{what}: sentence block {g} has {part._layout.reps[0].n} rows, not its {rows}")
            # Each block's target is made only when its part is taken, so the parts and the result are never
            # held whole together.
            target = CrossMoments(widths, blocks, device=part.device, precision=part.precision,
                                  row_norms=part.row_norms, diagonal=False)
            for rep, shift in zip(target._layout.reps, shifts, strict=True):
                assert shift is not None
                rep.shift = shift.to(target.device).clone()
            target.merge(part)
            target.release_buffers()
            taken.append(target)
            del part
        out = cls(widths, blocks, bounds[:2], device=first.device, precision=first.precision,
                  row_norms=first.row_norms)  # one empty block, replaced by the G taken
        out.bounds, out.parts = bounds, taken
        out.rows_seen = int(bounds[-1])
        out.release_buffers()
        out.finish()
        return out


def shard_block_bounds(bounds: np.ndarray, rows: tuple[int, int]) -> tuple[list[int], np.ndarray]:
    """The sentence blocks that rows [start, stop) of a shard overlap, and their bounds within the shard.

    Parameters
    ----------
    bounds
        (G + 1,) row offsets of the blocks over the whole corpus.
    rows
        The shard's rows.

    Returns
    -------
    tuple
        The overlapped blocks' indices, and (len + 1,) row offsets of their parts relative to ``start``
        (a block cut by a shard boundary is split between the two shards and added back by the merge).
    """
    start, stop = rows
    edges = np.asarray(bounds, dtype=np.int64)
    blocks = [g for g in range(len(edges) - 1) if edges[g] < stop and edges[g + 1] > start]
    local = np.clip(np.concatenate([edges[blocks], [edges[blocks[-1] + 1]]]), start, stop) - start if blocks \
        else np.zeros(1, dtype=np.int64)
    return blocks, local


def merge_block_parts(mine: dict[int, CrossMoments], theirs: Mapping[int, CrossMoments]) -> dict[int, CrossMoments]:
    """Two shards' block moments added block by block (in place into `mine`, which is returned)."""
    for g, part in theirs.items():
        if g in mine:
            mine[g].merge(part)
        else:
            mine[g] = part
    return mine


def cka_bootstrap_hsic(blocks: Sequence[MomentSums], a: int, b: int, counts: np.ndarray) -> np.ndarray:
    """||C_ab(w)||_F^2 for every replicate w of block multiplicities, from G x G inner products of the blocks.

    With S_g, s_g and n_g block g's sums about the shared shift, C(w) = S(w) - s_a(w) s_b(w)^T / n(w), so
    ||C(w)||^2 = w^T M w - 2 T(w, w, w) / n(w) + (w^T P w)(w^T Q w) / n(w)^2 with M_gh = <S_g, S_h>,
    T_ghk = s_a,g^T S_h s_b,k, P = s_a s_a^T and Q = s_b s_b^T: each replicate costs O(G^3), not a pass.

    Parameters
    ----------
    blocks
        The G blocks' sums.
    a, b
        The pair (a == b gives a self term).
    counts
        (B, G) multiplicities.

    Returns
    -------
    numpy.ndarray
        (B,) squared Frobenius norms of the replicates' centred cross blocks.
    """
    lo, hi = min(a, b), max(a, b)
    cross = torch.stack([p.blocks[lo, hi].cross for p in blocks])  # G x d_a x d_b
    sa = torch.stack([p.reps[lo].total for p in blocks])           # G x d_a
    sb = torch.stack([p.reps[hi].total for p in blocks])           # G x d_b
    n = torch.tensor([p.reps[lo].n for p in blocks], dtype=torch.float64, device=cross.device)
    flat = cross.reshape(len(blocks), -1)
    gram = flat @ flat.T                                           # M
    third = torch.einsum("ga,hab,kb->ghk", sa, cross, sb)          # T
    w = torch.as_tensor(counts, dtype=torch.float64, device=cross.device)
    rows = w @ n
    quadratic = ((w @ gram) * w).sum(dim=1)
    cubic = torch.einsum("bg,bh,bk,ghk->b", w, w, w, third)
    pa, pb = ((w @ sa) ** 2).sum(dim=1), ((w @ sb) ** 2).sum(dim=1)
    return (quadratic - 2 * cubic / rows + pa * pb / rows**2).cpu().numpy()
