"""What every report figure shares: the Agg canvas, saving as PNG + SVG, file names, colours and scales.

Colour conventions shared by all heatmaps: brighter = more similar, for distances too (their colour map is
reversed), and one colour scale per measure, shared by its main heatmap and its pair grid and stated in the
colour bar's label.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

SIMILARITY_CMAP = "viridis"
DISTANCE_CMAP = "viridis_r"
MISSING_COLOUR = "#d9d9d9"
SEPARATOR_COLOUR = "white"
PNG_DPI = 110
# The smallest text any report figure draws, in points: at PNG_DPI, 8 pt is 12 px before the page scales it.
MIN_FONT_PT = 8.0
# The page never shows a static figure so narrow that its smallest text drops under this many CSS pixels;
# a narrower screen scrolls the figure instead (see `min_display_width`).
MIN_TEXT_PX = 9.0


@dataclass(frozen=True)
class FigureFiles:
    """The two files a saved figure was written to.

    Attributes
    ----------
    png : Path
        The PNG file.
    svg : Path
        The SVG file.
    width_px : int
        The PNG's width in pixels.
    """

    png: Path
    svg: Path
    width_px: int = 0


def new_figure(width: float, height: float, layout: Literal["constrained"] | None = "constrained") -> Figure:
    """Create a figure attached to an Agg canvas (no pyplot involved).

    Parameters
    ----------
    width, height : float
        The size in inches.
    layout : {"constrained", None}, default "constrained"
        The layout engine; None to place axes by hand.

    Returns
    -------
    matplotlib.figure.Figure
        The empty figure.
    """
    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, out_dir: str | Path, stem: str, dpi: int = PNG_DPI) -> FigureFiles:
    """Write a figure as ``<stem>.png`` and ``<stem>.svg``.

    The SVG keeps its text as text (``svg.fonttype = "none"``), and is reproducible: a fixed hash salt and no
    date in its metadata. The layout is computed once, for the PNG, and reused for the SVG.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure; its layout engine is switched off after the first save.
    out_dir : str or Path
        The folder, created if needed.
    stem : str
        The file name without suffix; existing files are overwritten.
    dpi : int, default 110
        The PNG resolution.

    Returns
    -------
    FigureFiles
        The paths written and the PNG's width.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png, svg = out / f"{stem}.png", out / f"{stem}.svg"
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "reprsim"}):
        fig.savefig(png, dpi=dpi, format="png")
        # The layout is settled by the first save; recomputing it for the SVG only costs time.
        fig.set_layout_engine("none")
        fig.savefig(svg, format="svg", metadata={"Date": None})
    return FigureFiles(png=png, svg=svg, width_px=round(fig.get_figwidth() * dpi))


def quantize_png(path: Path, colours: int = 64) -> None:
    """Rewrite a PNG with a palette of at most `colours` colours.

    Line art loses nothing visible, and the file (which the page inlines) shrinks about threefold.

    Parameters
    ----------
    path : Path
        The PNG file, rewritten in place.
    colours : int, default 64
        The palette size (at most 256).
    """
    from PIL import Image  # matplotlib's own dependency

    with Image.open(path) as image:
        paletted = image.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    paletted.save(path, format="PNG", optimize=True)


def min_display_width(width_px: int, dpi: int = PNG_DPI, min_font_pt: float = MIN_FONT_PT) -> int:
    """The narrowest CSS width at which a PNG's smallest text is still `MIN_TEXT_PX` pixels high.

    Parameters
    ----------
    width_px : int
        The PNG's width in pixels.
    dpi : int, default 110
        The resolution it was saved at.
    min_font_pt : float, default 8
        The smallest font size it uses, in points.

    Returns
    -------
    int
        The width in CSS pixels (never more than the PNG's own width).
    """
    text_px = min_font_pt * dpi / 72.0
    return min(width_px, int(np.ceil(width_px * MIN_TEXT_PX / text_px)))


def slug(text: str) -> str:
    """Make a display name filename-safe (for display only: it is never parsed back).

    Parameters
    ----------
    text : str
        Any name.

    Returns
    -------
    str
        `text` with each run of characters other than ASCII letters, digits, ``.``, ``_`` and ``-`` replaced
        by ``-``, leading and trailing ``-`` and ``.`` removed; ``"x"`` if nothing is left.
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return cleaned or "x"


def model_colours(models: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """Give each model a stable colour, by its position in `models`.

    Parameters
    ----------
    models : sequence of str
        The models, in the order that assigns the colours.

    Returns
    -------
    dict of str to tuple of float
        Model -> RGBA colour from tab10, or from tab20 beyond ten models (cycling beyond twenty).
    """
    cmap = matplotlib.colormaps["tab10" if len(models) <= 10 else "tab20"]
    return {model: cmap(i % cmap.N) for i, model in enumerate(models)}


def colour_range(*arrays: np.ndarray) -> tuple[float, float]:
    """Find the minimum and maximum over the finite values of all arrays: one colour scale for a whole figure.

    Parameters
    ----------
    *arrays : numpy.ndarray
        Arrays of any shape, converted to float64; NaN and Inf are ignored.

    Returns
    -------
    vmin, vmax : float
        The smallest and largest finite value.

    Raises
    ------
    ValueError
        If there is no finite value at all.
    """
    finite = [a[np.isfinite(a)] for a in (np.asarray(x, dtype=np.float64) for x in arrays)]
    values = np.concatenate([f.ravel() for f in finite]) if finite else np.empty(0)
    if values.size == 0:
        raise ValueError("no finite values to draw")
    return float(values.min()), float(values.max())


def kind_label(larger_is_similar: bool) -> str:
    """Name what a measure's values are: a similarity, or a distance (lower = more similar).

    Parameters
    ----------
    larger_is_similar : bool
        False for distances.

    Returns
    -------
    str
        ``"similarity"`` or ``"distance (lower = more similar)"``.
    """
    return "similarity" if larger_is_similar else "distance (lower = more similar)"


def cell_label(larger_is_similar: bool, directed: bool) -> str:
    """Say what one heatmap cell holds: ``sim(row → column)``, ``distance(row, column)``, ...

    Parameters
    ----------
    larger_is_similar : bool
        False for distances, which are labelled as distances.
    directed : bool
        Whether the measure is directed (row → column) or symmetric.

    Returns
    -------
    str
        E.g. ``"cell = sim(row → column)"`` or ``"cell = distance(row, column), symmetric"``.
    """
    name = "sim" if larger_is_similar else "distance"
    return f"cell = {name}(row → column)" if directed else f"cell = {name}(row, column), symmetric"


def scale_label(
    measure: str, larger_is_similar: bool, vmin: float, vmax: float, what: str, shared: bool = False
) -> str:
    """Write a colour-bar label: the measure, which way is similar, what a cell is, and the colour scale.

    Parameters
    ----------
    measure : str
        The measure name.
    larger_is_similar : bool
        False for distances, which the label says are lower when more similar.
    vmin, vmax : float
        The colour scale.
    what : str
        What a cell holds, e.g. ``"cell = sim(row → column)"``.
    shared : bool, default False
        Whether the scale is the measure's own, shared by its every figure (said so), rather than this
        figure's.

    Returns
    -------
    str
        A three-line label.
    """
    scope = f"one scale for every {measure} figure" if shared else "one scale for the whole figure"
    return f"{measure} {kind_label(larger_is_similar)}\n{what}\n{scope}: {vmin:.3g} to {vmax:.3g}"


def colour_map(larger_is_similar: bool) -> Colormap:
    """Return the colour map (reversed for distances: brighter = more similar) with missing cells grey.

    Parameters
    ----------
    larger_is_similar : bool
        False for distances.

    Returns
    -------
    matplotlib.colors.Colormap
        viridis, or viridis reversed, with NaN drawn in `MISSING_COLOUR`.
    """
    cmap = matplotlib.colormaps[SIMILARITY_CMAP if larger_is_similar else DISTANCE_CMAP]
    return cmap.with_extremes(bad=MISSING_COLOUR)
