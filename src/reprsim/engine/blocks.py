"""The block layout of a one-pass cross-moment accumulator: where every requested block lives, and its sums.

Stack R representations side by side, Z = [X_1 | ... | X_R] (n rows, D = sum of widths d_a). A study asks for
some blocks (a, b), a <= b, of Z^T Z. `BlockLayout` decides where each block lives: one row panel per
representation a against each maximal run of consecutive representations b, so that one GEMM per panel
forms many blocks at once (a symmetric study costs half of Z^T Z). It owns the per-representation sums
(`RepresentationSums`) and the panels (`Panel`); `reprsim.engine.moments.CrossMoments` fills them from row
chunks (`reprsim.engine.staging`).

The argument checks (`resolve_device`, `check_precision`, `check_widths`, `normalise_pairs`) live in
`reprsim.engine.checks` (importable from here too) and the algebra of the row-norm sums (`NormSums`,
`panel_norm_sums`, `moved_norm_sums`) in `reprsim.engine.shifts`, which builds on this layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .checks import PRECISIONS, PairSpec, Precision, check_precision, check_widths, normalise_pairs, resolve_device

__all__ = [
    "PRECISIONS",
    "BlockLayout",
    "PairSpec",
    "Panel",
    "Precision",
    "RepresentationSums",
    "check_precision",
    "check_widths",
    "normalise_pairs",
    "resolve_device",
]


@dataclass
class RepresentationSums:
    """Per-representation sums over the rows seen (about the fixed shift).

    Parameters
    ----------
    width
        d, the number of columns.
    offset
        The representation's first column in the stacked chunk.
    shift
        (d,) fixed per-column shift, set from the first chunk.
    total
        (d,) sum of the shifted rows.
    absmax
        (d,) max |x| of the unshifted values, for the constant-neuron test.
    norm_total
        Sum of the squared shifted row norms.
    n
        Rows seen.
    frozen
        Complete from an earlier pass: used, never updated.
    """

    width: int
    offset: int
    shift: torch.Tensor | None = None
    total: torch.Tensor | None = None
    absmax: torch.Tensor | None = None
    norm_total: float = 0.0
    n: int = 0
    frozen: bool = False


@dataclass
class Panel:
    """S for one representation a against a contiguous run of representations b (all b >= a).

    A panel keeps its own row count and column sums over the rows it saw, so that it centres and merges
    on its own even when one of its representations was summed in an earlier pass. With z the shifted rows
    and p = |z|^2 per row, the row-norm sums (debiased CKA) are ``None`` (or 0) unless row norms are tracked.

    Parameters
    ----------
    row
        The representation a.
    cols
        The run of representations b.
    col_starts
        Start column of each b within the panel.
    product
        d_a x sum(d_b), float64: sum z_a z_B^T.
    row_total
        (d_a,) sum z_a.
    col_total
        (sum d_b,) sum z_B.
    n
        Rows seen.
    frozen
        Complete from an earlier pass: used, never updated.
    row_norm_total
        sum p_a.
    col_norm_totals
        (len(cols),) sum p_b.
    norms_dot
        (len(cols),) sum p_a p_b.
    row_norms_cols
        (sum d_b,) sum p_a z_b, concatenated over b.
    cols_norms_row
        (d_a, len(cols)) sum z_a p_b.

    Attributes
    ----------
    width
        sum(d_b), the panel's number of columns.
    """

    row: int
    cols: tuple[int, ...]
    col_starts: tuple[int, ...]
    product: torch.Tensor
    row_total: torch.Tensor
    col_total: torch.Tensor
    n: int = 0
    frozen: bool = False
    row_norm_total: float = 0.0
    col_norm_totals: torch.Tensor | None = None
    norms_dot: torch.Tensor | None = None
    row_norms_cols: torch.Tensor | None = None
    cols_norms_row: torch.Tensor | None = None
    width: int = field(init=False)

    def __post_init__(self) -> None:
        self.width = int(self.product.shape[1])


def _consecutive_runs(indices: Sequence[int]) -> list[list[int]]:
    """Split sorted indices into maximal runs of consecutive integers."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


class BlockLayout:
    """Where every requested block of a study lives, with the sums that fill it.

    Parameters
    ----------
    widths
        d_1..d_R, one per representation.
    blocks
        The blocks (a, b), a <= b, to hold.
    device
        The torch device of the accumulators.
    row_norms
        Also hold the row-norm sums of every panel (debiased CKA).
    """

    def __init__(
        self, widths: Sequence[int], blocks: Sequence[tuple[int, int]], device: torch.device, row_norms: bool
    ) -> None:
        self.widths = list(widths)
        self.device = device
        self.row_norms = row_norms
        self.reps: list[RepresentationSums] = []
        offset = 0
        for w in self.widths:
            self.reps.append(RepresentationSums(width=w, offset=offset))
            offset += w
        self.panels: list[Panel] = []
        self.where: dict[tuple[int, int], tuple[Panel, int]] = {}
        self.add_blocks(blocks)

    def zeros(self, *shape: int) -> torch.Tensor:
        """A float64 zero tensor on the layout's device.

        Parameters
        ----------
        *shape
            Its dimensions.

        Returns
        -------
        torch.Tensor
            The zeros.
        """
        return torch.zeros(*shape, dtype=torch.float64, device=self.device)

    def add_blocks(self, blocks: Sequence[tuple[int, int]]) -> None:
        """Create zeroed panels for the blocks not held yet, one per run of consecutive b per a.

        Parameters
        ----------
        blocks
            Blocks (a, b), a <= b; those already held are skipped.
        """
        by_row: dict[int, list[int]] = {}
        for a, b in blocks:
            if (a, b) not in self.where:
                by_row.setdefault(a, []).append(b)
        for a in sorted(by_row):
            for run in _consecutive_runs(sorted(set(by_row[a]))):
                starts, width = [], 0
                for b in run:
                    starts.append(width)
                    width += self.widths[b]
                d_a = self.widths[a]
                panel = Panel(
                    row=a,
                    cols=tuple(run),
                    col_starts=tuple(starts),
                    product=self.zeros(d_a, width),
                    row_total=self.zeros(d_a),
                    col_total=self.zeros(width),
                )
                if self.row_norms:
                    panel.col_norm_totals = self.zeros(len(run))
                    panel.norms_dot = self.zeros(len(run))
                    panel.row_norms_cols = self.zeros(width)
                    panel.cols_norms_row = self.zeros(d_a, len(run))
                self.panels.append(panel)
                for b, start in zip(run, starts, strict=True):
                    self.where[(a, b)] = (panel, start)

    def extended(self, widths: Sequence[int]) -> BlockLayout:
        """A layout of these representations plus new ones that shares (and freezes) every existing sum.

        Parameters
        ----------
        widths
            Widths of the new representations, numbered after the old ones.

        Returns
        -------
        BlockLayout
            The grown layout, holding no new blocks yet (`add_blocks` adds them).
        """
        for rep in self.reps:
            rep.frozen = True
        for panel in self.panels:
            panel.frozen = True
        grown = BlockLayout([], [], self.device, self.row_norms)
        grown.widths = self.widths + list(widths)
        grown.reps = list(self.reps)
        offset = sum(self.widths)
        for w in widths:
            grown.reps.append(RepresentationSums(width=w, offset=offset))
            offset += w
        grown.panels = list(self.panels)
        grown.where = dict(self.where)
        return grown

    def block(self, a: int, b: int) -> tuple[Panel, int, slice]:
        """Where a block lives.

        Parameters
        ----------
        a, b
            Representation indices, in either order.

        Returns
        -------
        tuple of (Panel, int, slice)
            The panel holding block (min, max), the index of max among its columns, and its column slice.

        Raises
        ------
        KeyError
            If the block was not requested.
        """
        lo, hi = min(a, b), max(a, b)
        try:
            panel, start = self.where[(lo, hi)]
        except KeyError:
            raise KeyError(
                f"block ({a}, {b}) was not requested; these CrossMoments hold {len(self.where)} blocks"
            ) from None
        return panel, panel.cols.index(hi), slice(start, start + self.widths[hi])

    def needed(self) -> list[bool]:
        """Which representations' chunks the next update uses (for their own sums or a pending block).

        Returns
        -------
        list of bool
            One flag per representation.
        """
        needed = [not r.frozen for r in self.reps]
        for panel in self.panels:
            if not panel.frozen:
                needed[panel.row] = True
                for b in panel.cols:
                    needed[b] = True
        return needed
