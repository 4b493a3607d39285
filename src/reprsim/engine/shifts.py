"""Moving accumulated sums from one per-column shift to another, exactly.

`CrossMoments` sums every row minus a fixed per-column shift (docs/design/engine.md). Reading a centred term
moves the sums to the exact means; merging two shards moves one shard's sums to the other's shifts. Both are
exact binomial expansions:

- `NormSums`, `panel_norm_sums`, `moved_norm_sums`: the row-norm sums that debiased CKA needs;
- `merge_shard`: every sum of a shard (per-representation sums, cross-product panels and their row-norm
  sums) re-expressed about another shard's shifts and added into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # annotations only: blocks re-exports this module's names
    from .blocks import BlockLayout, Panel, RepresentationSums


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


def merge_shard(mine: BlockLayout, theirs: BlockLayout) -> None:
    """Add another shard's sums into these, every sum moved from its shifts to these shifts first.

    The result equals one pass over the rows of both shards up to rounding. A representation of `mine` that
    has no shift yet takes the other's.

    Parameters
    ----------
    mine
        The layout added into, in place.
    theirs
        A layout of other rows with the same widths, blocks and row-norm tracking (on any device).
        Accumulators frozen by `BlockLayout.extended` must be the very same (shared) objects.

    Raises
    ------
    ValueError
        If a frozen representation or panel is not shared between the two.
    """
    deltas = [shift_difference(a, m, t, mine.device) for a, (m, t) in enumerate(zip(mine.reps, theirs.reps,
                                                                                       strict=True))]
    for panel, other in zip(mine.panels, theirs.panels, strict=True):
        if panel.frozen or other.frozen:
            if panel is not other:
                raise ValueError(f"a block panel of representation {panel.row} is frozen but not shared")
        elif other.n:
            merge_panel(panel, other, deltas, mine.widths, mine.row_norms)
    for a, (rep, other_rep) in enumerate(zip(mine.reps, theirs.reps, strict=True)):
        if not rep.frozen and other_rep.n:
            merge_rep(rep, other_rep, deltas[a])


def shift_difference(
    a: int, mine: RepresentationSums, theirs: RepresentationSums, device: torch.device
) -> torch.Tensor:
    """Delta = the other's shift - this shift for representation a (zero when shared or unset).

    Parameters
    ----------
    a
        The representation's index, used in the error.
    mine, theirs
        Its sums in the two shards; `mine` takes the other's shift when it has none yet.
    device
        The device of `mine`.

    Returns
    -------
    torch.Tensor
        (d_a,) float64 on `device`.

    Raises
    ------
    ValueError
        If the representation is frozen in one shard but not shared with the other.
    """
    if mine.frozen or theirs.frozen:
        if mine is not theirs:
            raise ValueError(f"representation {a} is frozen in one shard but not shared with the other")
        return torch.zeros(mine.width, dtype=torch.float64, device=device)
    if theirs.shift is None:
        return torch.zeros(mine.width, dtype=torch.float64, device=device)
    if mine.shift is None:
        mine.shift = theirs.shift.to(device).clone()
    return theirs.shift.to(device) - mine.shift


def merge_rep(mine: RepresentationSums, theirs: RepresentationSums, delta: torch.Tensor) -> None:
    """Add a shard's per-representation sums, moved by delta to this shift.

    Parameters
    ----------
    mine
        The sums added into, in place.
    theirs
        The other shard's sums of the same representation (it has seen rows).
    delta
        The other's shift minus this one (`shift_difference`), on the device of `mine`.
    """
    assert theirs.total is not None and theirs.absmax is not None
    device = delta.device
    total = theirs.total.to(device)
    mine.norm_total += theirs.norm_total + float(2.0 * total @ delta + theirs.n * delta.square().sum())
    total = total + theirs.n * delta
    absmax = theirs.absmax.to(device)
    mine.total = total if mine.total is None else mine.total + total
    mine.absmax = absmax if mine.absmax is None else torch.maximum(mine.absmax, absmax)
    mine.n += theirs.n


def merge_panel(
    mine: Panel, theirs: Panel, deltas: Sequence[torch.Tensor], widths: Sequence[int], row_norms: bool
) -> None:
    """Add a shard's panel, every block moved by its representations' deltas to these shifts.

    Parameters
    ----------
    mine
        The panel added into, in place.
    theirs
        The other shard's panel of the same blocks.
    deltas
        Per representation, the other's shift minus this one (`shift_difference`), on the device of `mine`.
    widths
        The width of every representation.
    row_norms
        Whether the panels track row-norm sums.
    """
    n = theirs.n
    delta_a = deltas[mine.row]
    device = delta_a.device
    for k, b in enumerate(mine.cols):
        cols = slice(mine.col_starts[k], mine.col_starts[k] + widths[b])
        delta_b = deltas[b]
        s_a, s_b = theirs.row_total.to(device), theirs.col_total[cols].to(device)
        if row_norms:
            sums = panel_norm_sums(theirs, k, cols)
            moved = moved_norm_sums(NormSums.to(sums, device), delta_a, delta_b, n)
            assert mine.norms_dot is not None and mine.row_norms_cols is not None
            assert mine.cols_norms_row is not None and mine.col_norm_totals is not None
            mine.norms_dot[k] += moved.dot
            mine.row_norms_cols[cols] += moved.a_norms_b_cols
            mine.cols_norms_row[:, k] += moved.a_cols_b_norms
            mine.col_norm_totals[k] += sums.norm_total_b + 2.0 * (s_b @ delta_b) + n * (delta_b @ delta_b)
        block = theirs.product[:, cols].to(device)
        mine.product[:, cols] += (
            block + torch.outer(s_a, delta_b) + torch.outer(delta_a, s_b) + n * torch.outer(delta_a, delta_b)
        )
        mine.col_total[cols] += s_b + n * delta_b
    s_a = theirs.row_total.to(device)
    mine.row_norm_total += theirs.row_norm_total + float(2.0 * (s_a @ delta_a) + n * (delta_a @ delta_a))
    mine.row_total += s_a + n * delta_a
    mine.n += n
