"""`CrossMoments` as plain named arrays, for moments files written by one process and merged by another.

The arrays are numbers only (no pickle): the widths, the blocks, the per-representation sums and every panel's
sums, keyed ``rep.<field>`` (stacked over representations where a field is a scalar) and
``panel<k>.<field>``. The panels' layout follows from the widths and blocks, so reading rebuilds it and
checks every array's shape against it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from .checks import check_precision
from .moments import CrossMoments

__all__ = ["block_parts_arrays", "block_parts_from_arrays", "moments_arrays", "moments_from_arrays"]

_PANEL_VECTORS = ("row_total", "col_total")
_PANEL_NORMS = ("col_norm_totals", "norms_dot", "row_norms_cols", "cols_norms_row")


def _numpy(t: torch.Tensor | None) -> np.ndarray:
    """A float64 numpy copy of an accumulator."""
    assert t is not None
    return t.detach().to("cpu", torch.float64).numpy().copy()


def moments_arrays(moments: CrossMoments) -> dict[str, np.ndarray]:
    """Every sum of the moments as named float64 / int64 arrays.

    Parameters
    ----------
    moments
        Moments that have seen rows of every representation, none frozen by `with_representations`.

    Returns
    -------
    dict of str to numpy.ndarray
        Arrays that `moments_from_arrays` turns back into equal moments.

    Raises
    ------
    ValueError
        If some representation has seen no rows, or part of the moments is frozen.
    """
    layout = moments._layout
    if any(r.frozen for r in layout.reps) or any(p.frozen for p in layout.panels):
        raise ValueError("moments extended by with_representations cannot be written; write each pass's own")
    empty = [a for a, r in enumerate(layout.reps) if r.n == 0 or r.shift is None]
    if empty:
        raise ValueError(f"representations {empty} have seen no rows; there is nothing to write")
    out: dict[str, np.ndarray] = {
        "widths": np.asarray(moments.widths, dtype=np.int64),
        "blocks": np.asarray(moments.blocks, dtype=np.int64).reshape(-1, 2),
        "row_norms": np.asarray(moments.row_norms),
        "precision": np.asarray(moments.precision),
        "multiply_adds": np.asarray(moments.multiply_adds, dtype=np.int64),
        "rep.n": np.asarray([r.n for r in layout.reps], dtype=np.int64),
        "rep.norm_total": np.asarray([r.norm_total for r in layout.reps], dtype=np.float64),
        "panel.n": np.asarray([p.n for p in layout.panels], dtype=np.int64),
        "panel.row_norm_total": np.asarray([p.row_norm_total for p in layout.panels], dtype=np.float64),
    }
    for a, r in enumerate(layout.reps):
        out[f"rep{a}.shift"], out[f"rep{a}.total"], out[f"rep{a}.absmax"] = (
            _numpy(r.shift), _numpy(r.total), _numpy(r.absmax))
    for k, p in enumerate(layout.panels):
        out[f"panel{k}.product"] = _numpy(p.product)
        for name in _PANEL_VECTORS + (_PANEL_NORMS if moments.row_norms else ()):
            out[f"panel{k}.{name}"] = _numpy(getattr(p, name))
    return out


def _take(arrays: Mapping[str, np.ndarray], key: str, shape: tuple[int, ...], what: str) -> np.ndarray:
    """One array, checked for presence, shape and finiteness."""
    if key not in arrays:
        raise ValueError(f"{what}: array {key!r} is missing")
    value = np.asarray(arrays[key])
    if value.shape != shape:
        raise ValueError(f"{what}: array {key!r} has shape {value.shape}, expected {shape}")
    if value.dtype.kind in "fc" and not np.isfinite(value).all():
        raise ValueError(f"{what}: array {key!r} holds non-finite values")
    return value


def moments_from_arrays(arrays: Mapping[str, np.ndarray], *, device: str | torch.device = "cpu",
                        what: str = "moments") -> CrossMoments:
    """Moments rebuilt from `moments_arrays`' output.

    Parameters
    ----------
    arrays
        The named arrays (a loaded ``.npz`` works).
    device
        Where the accumulators live.
    what
        How errors name the source (a file name).

    Returns
    -------
    CrossMoments
        Moments equal to those written, which can be merged, updated and read.

    Raises
    ------
    ValueError
        If an array is missing, has the wrong shape or holds non-finite values, or the widths or blocks are
        malformed; the message starts with `what`.
    """
    for key in ("widths", "blocks", "row_norms", "precision"):
        if key not in arrays:
            raise ValueError(f"{what}: array {key!r} is missing")
    try:
        widths = [int(w) for w in np.asarray(arrays["widths"]).reshape(-1)]
        blocks = [(int(a), int(b)) for a, b in np.asarray(arrays["blocks"]).reshape(-1, 2)]
        moments = CrossMoments(widths, blocks, device=device, precision=check_precision(str(arrays["precision"])),
                               row_norms=bool(arrays["row_norms"]), diagonal=False)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what}: {exc}") from exc
    layout = moments._layout
    n_reps, n_panels = len(layout.reps), len(layout.panels)
    rep_n = _take(arrays, "rep.n", (n_reps,), what)
    rep_norms = _take(arrays, "rep.norm_total", (n_reps,), what)
    panel_n = _take(arrays, "panel.n", (n_panels,), what)
    panel_norms = _take(arrays, "panel.row_norm_total", (n_panels,), what)
    if (rep_n < 1).any() or (panel_n < 1).any():
        raise ValueError(f"{what}: row counts must be positive")

    def tensor(key: str, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.from_numpy(_take(arrays, key, shape, what).astype(np.float64)).to(moments.device)

    for a, r in enumerate(layout.reps):
        r.shift, r.total, r.absmax = (tensor(f"rep{a}.{f}", (r.width,)) for f in ("shift", "total", "absmax"))
        r.n, r.norm_total = int(rep_n[a]), float(rep_norms[a])
    for k, p in enumerate(layout.panels):
        d_a, runs = layout.widths[p.row], len(p.cols)
        p.product = tensor(f"panel{k}.product", (d_a, p.width))
        p.row_total, p.col_total = tensor(f"panel{k}.row_total", (d_a,)), tensor(f"panel{k}.col_total", (p.width,))
        p.n, p.row_norm_total = int(panel_n[k]), float(panel_norms[k])
        if moments.row_norms:
            shapes = {"col_norm_totals": (runs,), "norms_dot": (runs,), "row_norms_cols": (p.width,),
                      "cols_norms_row": (d_a, runs)}
            for name, shape in shapes.items():
                setattr(p, name, tensor(f"panel{k}.{name}", shape))
    if "multiply_adds" in arrays:
        moments.multiply_adds = int(arrays["multiply_adds"])
    return moments


def block_parts_arrays(parts: Mapping[int, CrossMoments]) -> dict[str, np.ndarray]:
    """Per sentence block moments (a shard's part of `reprsim.engine.BlockedMoments`) as named arrays.

    Parameters
    ----------
    parts
        Block index -> that block's moments over the rows seen.

    Returns
    -------
    dict of str to numpy.ndarray
        ``sentence_blocks`` (the indices) and each block's `moments_arrays` keyed ``block<g>.<name>``.
    """
    out: dict[str, np.ndarray] = {"sentence_blocks": np.asarray(sorted(parts), dtype=np.int64)}
    for g in sorted(parts):
        out.update({f"block{g}.{key}": value for key, value in moments_arrays(parts[g]).items()})
    return out


def block_parts_from_arrays(arrays: Mapping[str, np.ndarray], *, device: str | torch.device = "cpu",
                            what: str = "moments") -> dict[int, CrossMoments]:
    """Block moments rebuilt from `block_parts_arrays`' output.

    Parameters
    ----------
    arrays, device, what
        As for `moments_from_arrays`.

    Returns
    -------
    dict of int to CrossMoments
        Block index -> its moments.

    Raises
    ------
    ValueError
        As `moments_from_arrays`, for any block, or if the block indices are missing or malformed.
    """
    if "sentence_blocks" not in arrays:
        raise ValueError(f"{what}: array 'sentence_blocks' is missing (the file holds no per-block moments)")
    ids = np.asarray(arrays["sentence_blocks"])
    if ids.ndim != 1 or ids.dtype.kind not in "iu" or len(set(ids.tolist())) != len(ids) or (ids < 0).any():
        raise ValueError(f"{what}: array 'sentence_blocks' must list distinct block indices")
    parts = {}
    for g in ids.tolist():
        prefix = f"block{g}."
        own = {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
        parts[int(g)] = moments_from_arrays(own, device=device, what=f"{what} (sentence block {g})")
    return parts
