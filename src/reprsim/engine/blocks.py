"""The block layout of a one-pass cross-moment accumulator, and the algebra of its row-norm sums.

Stack R representations side by side, Z = [X_1 | ... | X_R] (n rows, D = sum of widths d_a). A study asks for
some blocks (a, b), a <= b, of Z^T Z. `BlockLayout` decides where each block lives: one row panel per
representation a against each maximal run of consecutive representations b, so that one GEMM per panel
forms many blocks at once (a symmetric study costs half of Z^T Z). It owns the per-representation sums and the
panels; `reprsim.engine.moments.CrossMoments` fills them from row chunks.

The row-norm sums that debiased CKA needs are moved between shifts by an exact binomial expansion
(`moved_norm_sums`), used both to centre them and to merge shards accumulated about different shifts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

Precision = Literal["float64", "float32"]
PairSpec = Literal["all"] | Iterable[tuple[int, int]]

PRECISIONS: tuple[str, ...] = ("float64", "float32")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device to accumulate on.

    Parameters
    ----------
    device
        ``"auto"`` (CUDA when available, the CPU otherwise), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a
        `torch.device`.

    Returns
    -------
    torch.device
        The resolved device.

    Raises
    ------
    ValueError
        If the device is not one torch knows, or CUDA was requested but is not available.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available; use device='auto'")
    return resolved


def check_precision(precision: str) -> Precision:
    """Validate the GEMM precision.

    Parameters
    ----------
    precision
        ``"float64"``, or ``"float32"`` (float32 products added into float64 accumulators).

    Returns
    -------
    Precision
        The same string.

    Raises
    ------
    ValueError
        If it is neither.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision  # type: ignore[return-value]


def check_widths(widths: Sequence[int], what: str = "widths") -> list[int]:
    """Representation widths as a list of positive ints.

    Parameters
    ----------
    widths
        One width per representation.
    what
        What errors call the sequence.

    Returns
    -------
    list of int
        The widths.

    Raises
    ------
    ValueError
        If the sequence is empty or an entry is not a positive integer (naming the entry).
    """
    out = []
    for i, w in enumerate(widths):
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ValueError(f"{what}[{i}] must be a positive integer, got {w!r}")
        out.append(int(w))
    if not out:
        raise ValueError(f"{what} is empty: give at least one representation width")
    return out


def normalise_pairs(pairs: PairSpec, n_reps: int, diagonal: bool) -> list[tuple[int, int]]:
    """The blocks a study asks for, as sorted unique (a, b) with a <= b.

    Parameters
    ----------
    pairs
        ``"all"`` (every block) or (a, b) index pairs in either order.
    n_reps
        The number of representations.
    diagonal
        Add the diagonal block (a, a) of every representation (every pair measure needs both of its
        representations' own blocks). ``"all"`` includes them anyway.

    Returns
    -------
    list of tuple of (int, int)
        The blocks.

    Raises
    ------
    ValueError
        If `pairs` is a string other than ``"all"``, a pair is not two indices, or an index is out of range.
    """
    if isinstance(pairs, str):
        if pairs != "all":
            raise ValueError(f"pairs must be 'all' or a list of (a, b) index pairs, got {pairs!r}")
        return [(a, b) for a in range(n_reps) for b in range(a, n_reps)]
    blocks: set[tuple[int, int]] = set()
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"each pair must be two representation indices, got {pair!r}")
        a, b = pair
        for i in (a, b):
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_reps:
                raise ValueError(f"pair {pair!r}: index {i!r} is not in 0..{n_reps - 1}")
        blocks.add((min(a, b), max(a, b)))
    if diagonal:
        blocks.update((a, a) for a in range(n_reps))
    return sorted(blocks)


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


@dataclass(frozen=True)
class NormSums:
    """Row-norm sums of block (a, b) about some shift: z = x - shift, p = |z|^2 per row.

    Parameters
    ----------
    cross
        sum z_a z_b^T.
    total_a, total_b
        sum z_a, sum z_b.
    norm_total_a, norm_total_b
        sum p_a, sum p_b.
    dot
        sum p_a p_b (0-d).
    a_norms_b_cols
        sum p_a z_b.
    a_cols_b_norms
        sum z_a p_b.
    """

    cross: torch.Tensor
    total_a: torch.Tensor
    total_b: torch.Tensor
    norm_total_a: float
    norm_total_b: float
    dot: torch.Tensor
    a_norms_b_cols: torch.Tensor
    a_cols_b_norms: torch.Tensor

    def to(self, device: torch.device) -> NormSums:
        """The same sums with every tensor on a device.

        Parameters
        ----------
        device
            The target device.

        Returns
        -------
        NormSums
            A copy on `device` (tensors already there are shared).
        """
        return NormSums(
            cross=self.cross.to(device),
            total_a=self.total_a.to(device),
            total_b=self.total_b.to(device),
            norm_total_a=self.norm_total_a,
            norm_total_b=self.norm_total_b,
            dot=self.dot.to(device),
            a_norms_b_cols=self.a_norms_b_cols.to(device),
            a_cols_b_norms=self.a_cols_b_norms.to(device),
        )


def panel_norm_sums(panel: Panel, k: int, cols: slice) -> NormSums:
    """The row-norm sums of one block of a panel (about the shifts).

    Parameters
    ----------
    panel
        A panel that tracks row norms.
    k
        The block's index among the panel's columns.
    cols
        The block's column slice within the panel.

    Returns
    -------
    NormSums
        Views of the panel's sums (not copies).
    """
    assert panel.norms_dot is not None and panel.row_norms_cols is not None
    assert panel.cols_norms_row is not None and panel.col_norm_totals is not None
    return NormSums(
        cross=panel.product[:, cols],
        total_a=panel.row_total,
        total_b=panel.col_total[cols],
        norm_total_a=panel.row_norm_total,
        norm_total_b=float(panel.col_norm_totals[k]),
        dot=panel.norms_dot[k],
        a_norms_b_cols=panel.row_norms_cols[cols],
        a_cols_b_norms=panel.cols_norms_row[:, k],
    )


def moved_norm_sums(s: NormSums, delta_a: torch.Tensor, delta_b: torch.Tensor, n: int) -> NormSums:
    """The row-norm sums after moving every row by delta: z' = z + delta (exact binomial expansion).

    ``delta = -mean`` gives the centred sums (debiased CKA); ``delta`` = a shift difference merges two shards.

    Parameters
    ----------
    s
        The sums about the old shift.
    delta_a, delta_b
        (d_a,) and (d_b,) moves of the two representations' rows.
    n
        The number of rows summed.

    Returns
    -------
    NormSums
        Only ``dot``, ``a_norms_b_cols`` and ``a_cols_b_norms`` are moved; the other fields are returned as
        given.

    Notes
    -----
    With p' = p + 2 z.delta + |delta|^2 and S_ab = sum z_a z_b^T, s = sum z, P = sum p::

        sum p'_a z'_b = sum p_a z_b + P_a delta_b + 2 S_ab^T delta_a + 2 (s_a.delta_a) delta_b
                        + |delta_a|^2 s_b + n |delta_a|^2 delta_b,
        sum p'_a p'_b = sum p_a p_b + 2 delta_b.(sum p_a z_b) + 2 delta_a.(sum z_a p_b)
                        + 4 delta_a^T S_ab delta_b
                        + |delta_b|^2 (P_a + 2 s_a.delta_a) + |delta_a|^2 (P_b + 2 s_b.delta_b)
                        + n |delta_a|^2 |delta_b|^2.
    """
    da2, db2 = delta_a @ delta_a, delta_b @ delta_b
    sa_da, sb_db = s.total_a @ delta_a, s.total_b @ delta_b
    a_norms_b_cols = (
        s.a_norms_b_cols
        + s.norm_total_a * delta_b
        + 2.0 * (s.cross.T @ delta_a)
        + 2.0 * sa_da * delta_b
        + da2 * s.total_b
        + n * da2 * delta_b
    )
    a_cols_b_norms = (
        s.a_cols_b_norms
        + s.norm_total_b * delta_a
        + 2.0 * (s.cross @ delta_b)
        + 2.0 * sb_db * delta_a
        + db2 * s.total_a
        + n * db2 * delta_a
    )
    dot = (
        s.dot
        + 2.0 * (delta_b @ s.a_norms_b_cols)
        + 2.0 * (delta_a @ s.a_cols_b_norms)
        + 4.0 * (delta_a @ (s.cross @ delta_b))
        + db2 * (s.norm_total_a + 2.0 * sa_da)
        + da2 * (s.norm_total_b + 2.0 * sb_db)
        + n * da2 * db2
    )
    return NormSums(
        cross=s.cross,
        total_a=s.total_a,
        total_b=s.total_b,
        norm_total_a=s.norm_total_a,
        norm_total_b=s.norm_total_b,
        dot=dot,
        a_norms_b_cols=a_norms_b_cols,
        a_cols_b_norms=a_cols_b_norms,
    )
