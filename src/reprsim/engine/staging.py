"""Adding one chunk of rows to a block layout: staging, shifting, checking, and one GEMM per panel.

`CrossMoments.update` hands each chunk here. The chunks of every needed representation are checked (a real 2-D
array of the right width and row count, finite, small enough for the GEMM dtype), shifted by the fixed
per-column shift and staged side by side in one reusable buffer, so that one GEMM per panel forms all of its
blocks. Nothing is recorded unless every chunk passes its checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from reprsim.arrays import ArrayLike, matrix_tensor, raise_non_finite

from .blocks import BlockLayout, Panel, RepresentationSums
from .checks import Precision


def gemm_dtype(precision: Precision) -> torch.dtype:
    """The dtype chunks are staged and multiplied in.

    Parameters
    ----------
    precision
        ``"float64"`` or ``"float32"``.

    Returns
    -------
    torch.dtype
        ``torch.float64`` or ``torch.float32``.
    """
    return torch.float64 if precision == "float64" else torch.float32


class ChunkBuffers:
    """The reusable buffers of a pass: the stacked chunk (rows x D) and a float32 chunk product.

    One allocation per pass, not one per panel and chunk: per-chunk temporaries fragment the allocator's heap.

    Parameters
    ----------
    width
        D, the summed width of every representation.
    dtype
        The GEMM dtype.
    device
        The torch device.
    """

    def __init__(self, width: int, dtype: torch.dtype, device: torch.device) -> None:
        self.width, self.dtype, self.device = width, dtype, device
        self._stacked: torch.Tensor | None = None
        self._products: torch.Tensor | None = None

    def stacked(self, rows: int) -> torch.Tensor:
        """The stacked chunk buffer.

        Parameters
        ----------
        rows
            The chunk's rows.

        Returns
        -------
        torch.Tensor
            rows x D in the GEMM dtype (a view of a buffer reused while it is large enough).
        """
        if self._stacked is None or self._stacked.shape[0] < rows:
            self._stacked = None  # free the old one before allocating
            self._stacked = torch.empty(rows, self.width, dtype=self.dtype, device=self.device)
        return self._stacked[:rows]

    def product_out(self, rows: int, cols: int) -> torch.Tensor:
        """A reusable contiguous matrix for a float32 chunk product.

        Parameters
        ----------
        rows, cols
            Its shape.

        Returns
        -------
        torch.Tensor
            rows x cols in the GEMM dtype.
        """
        if self._products is None or self._products.numel() < rows * cols:
            self._products = None
            self._products = torch.empty(rows * cols, dtype=self.dtype, device=self.device)
        return self._products[: rows * cols].view(rows, cols)

    def release(self) -> None:
        """Free both buffers; the next chunk allocates them again."""
        self._stacked = None
        self._products = None


def add_chunk(
    layout: BlockLayout,
    buffers: ChunkBuffers,
    precision: Precision,
    chunks: Iterable[ArrayLike | None],
    names: Sequence[object] | None,
) -> int:
    """Add one chunk of rows, one array per representation, to the layout's pending sums and blocks.

    Parameters
    ----------
    layout
        The sums and panels to add to.
    buffers
        The pass's staging buffers.
    precision
        The GEMM precision.
    chunks
        One entry per representation, consumed lazily; ``None`` for one that no pending sum or block needs.
    names
        One name per representation, used in errors (default: the indices).

    Returns
    -------
    int
        The multiply-adds done by the block GEMMs.

    Raises
    ------
    ValueError
        As `CrossMoments.update`.
    """
    n_reps = len(layout.reps)
    needed = layout.needed()
    rows: int | None = None
    norms: list[torch.Tensor | None] = [None] * n_reps
    column_max: list[torch.Tensor | None] = [None] * n_reps
    shifts: list[torch.Tensor | None] = [None] * n_reps  # of the staged representations
    buffer: torch.Tensor | None = None
    count = 0
    for a, chunk in enumerate(chunks):
        count += 1
        if a >= n_reps:
            raise ValueError(f"update got more than {n_reps} chunks (one per representation)")
        if chunk is None:
            if needed[a]:
                raise ValueError(f"{representation_label(a, names)}: its chunk is needed but None was given")
            continue
        if not needed[a]:
            continue
        name = f"chunk of {representation_label(a, names)}"
        x = matrix_tensor(chunk, name, device=layout.device)
        rep = layout.reps[a]
        if x.shape[1] != rep.width:
            raise ValueError(f"{name} has {x.shape[1]} columns, expected width {rep.width}")
        if rows is None:
            rows = int(x.shape[0])
            buffer = buffers.stacked(rows)
        elif x.shape[0] != rows:
            raise ValueError(
                f"{name} has {x.shape[0]} rows but an earlier representation's "
                f"chunk has {rows}: chunks must hold the same rows (words) of every representation"
            )
        assert buffer is not None
        z = buffer[:, rep.offset : rep.offset + rep.width]
        absmax, shift = stage(rep, x, z, name)
        check_product_range(name, float((absmax + shift.abs()).max()), rows, precision)
        shifts[a], column_max[a] = shift, None if rep.frozen else absmax
        del x
        if layout.row_norms:
            wide = z if z.dtype == torch.float64 else z.to(torch.float64)
            norms[a] = (wide * wide).sum(dim=1)
    if count != n_reps:
        raise ValueError(f"update got {count} chunks, expected {n_reps} (one per representation)")
    if rows is None or buffer is None:
        return 0
    # Summed in the GEMM dtype (a cascade sum, far more accurate than the GEMMs): sum(dtype=float64) would
    # first copy the whole buffer to float64.
    column_sums = buffer.sum(dim=0).to(torch.float64)
    # Every chunk passed: only now does anything about the representations change.
    for a, rep in enumerate(layout.reps):
        if shifts[a] is not None:
            rep.shift = shifts[a]
        largest = column_max[a]
        if largest is not None:
            add_sums(rep, column_sums[rep.offset : rep.offset + rep.width], largest, norms[a], rows)
    multiply_adds = 0
    for panel in layout.panels:
        if not panel.frozen:
            multiply_adds += add_panel(panel, layout, buffer, column_sums, norms, rows, precision, buffers)
    return multiply_adds


def representation_label(a: int, names: Sequence[object] | None) -> str:
    """How errors name representation a: its given name, else its index.

    Parameters
    ----------
    a
        The representation's index.
    names
        One name per representation, or ``None``.

    Returns
    -------
    str
        ``"representation NAME"`` or ``"representation a"``.
    """
    return f"representation {a}" if names is None else f"representation {names[a]!r}"


def check_product_range(name: str, furthest: float, rows: int, precision: Precision) -> None:
    """Refuse a chunk whose shifted values (at most ``furthest`` in size) could overflow the GEMM dtype.

    An entry of a cross-product block is a sum of `rows` products of two shifted values, so the bound
    rows x furthest^2 for every representation covers every block, the column sums and the shifted
    values themselves.

    Parameters
    ----------
    name
        What the message calls the chunk.
    furthest
        The largest shifted value's size.
    rows
        The chunk's rows.
    precision
        The GEMM precision.

    Raises
    ------
    ValueError
        If the products could overflow, with advice (float64 GEMMs, or rescaling the values).
    """
    # The derivations square block entries (linear CKA sums p x q of them): keep rows x furthest^2 under
    # 2^480, so those squares stay far from float64's 2^1024 whatever the GEMM dtype.
    bound = rows * furthest * furthest
    if bound >= min(torch.finfo(gemm_dtype(precision)).max, 2.0**480):
        advice = (
            "use precision='float64'"
            if precision == "float32" and bound < 2.0**480
            else "rescale the values (every measure is invariant to isotropic scaling)"
        )
        raise ValueError(
            f"{name}: values up to {furthest:.3g} (minus the first chunk's column "
            f"means) could overflow {precision} cross-products over {rows} rows (or the float64 "
            f"derivations that square them); {advice}"
        )


def stage(rep: RepresentationSums, x: torch.Tensor, z: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Write the chunk's rows minus the shift into z (its columns of the staging buffer).

    Rows that the GEMM dtype holds exactly (float16/bfloat16/float32 for float32 GEMMs, anything for float64)
    are copied and shifted in place when the shift is exact in that dtype too; others (float64 rows for
    float32 GEMMs, or a float64 shift taken over from a merged shard) are shifted in float64 first, so a
    large mean never costs the spread its digits.

    Parameters
    ----------
    rep
        The representation's sums (its shift, or none before the first chunk; its row count, for errors).
    x
        The chunk, rows x d.
    z
        The representation's columns of the staging buffer, written.
    name
        What errors call the chunk.

    Returns
    -------
    tuple of (torch.Tensor, torch.Tensor)
        The column-wise max |x| and the shift subtracted (float64), which `add_chunk` records only once every
        chunk has passed its checks.

    Raises
    ------
    ValueError
        If the chunk holds NaN or Inf (naming the row in the whole stream).
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


def add_sums(
    rep: RepresentationSums, total: torch.Tensor, column_max: torch.Tensor, norms: torch.Tensor | None, rows: int
) -> None:
    """Add one chunk's column sums, column max |x|, row-norm sum and row count to a representation.

    Parameters
    ----------
    rep
        The representation's sums, updated in place.
    total
        (d,) the chunk's column sums about the shift.
    column_max
        (d,) the chunk's column max |x|.
    norms
        The chunk's squared shifted row norms, or ``None`` when row norms are not tracked.
    rows
        The chunk's rows.
    """
    rep.total = total.clone() if rep.total is None else rep.total + total
    rep.absmax = column_max if rep.absmax is None else torch.maximum(rep.absmax, column_max)
    if norms is not None:
        rep.norm_total += float(norms.sum())
    rep.n += rows


def add_panel(
    panel: Panel,
    layout: BlockLayout,
    buffer: torch.Tensor,
    column_sums: torch.Tensor,
    norms: Sequence[torch.Tensor | None],
    rows: int,
    precision: Precision,
    buffers: ChunkBuffers,
) -> int:
    """Add one chunk's products (one GEMM), column sums and row-norm sums to a panel.

    Parameters
    ----------
    panel
        The panel, updated in place.
    layout
        The layout holding it (its representations' columns in the buffer, whether row norms are tracked).
    buffer
        The staged chunk, rows x D.
    column_sums
        (D,) float64 column sums of the buffer.
    norms
        Per representation, its squared shifted row norms (when tracked).
    rows
        The chunk's rows.
    precision
        The GEMM precision.
    buffers
        The pass's buffers (for a float32 chunk product).

    Returns
    -------
    int
        The multiply-adds of the GEMM.
    """
    rep_a = layout.reps[panel.row]
    start = layout.reps[panel.cols[0]].offset
    za = buffer[:, rep_a.offset : rep_a.offset + rep_a.width]
    zb = buffer[:, start : start + panel.width]  # a contiguous run of representations
    if precision == "float64":
        panel.product.addmm_(za.T, zb)
    else:  # float32 chunk product, added into the float64 sum
        panel.product.add_(torch.mm(za.T, zb, out=buffers.product_out(za.shape[1], zb.shape[1])))
    panel.row_total += column_sums[rep_a.offset : rep_a.offset + rep_a.width]
    panel.col_total += column_sums[start : start + panel.width]
    panel.n += rows
    if layout.row_norms:
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
    return rows * rep_a.width * panel.width
