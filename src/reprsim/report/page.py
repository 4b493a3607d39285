"""HTML pieces of the report page: escaping, tables (shaded and scrollable), notes, figures and the stylesheet.

Everything here returns HTML text; nothing reads or writes files except `figure_html`, which inlines a PNG.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

from reprsim.report.style import DISTANCE_CMAP, SIMILARITY_CMAP, FigureFiles, min_display_width

FIGURE_DIR = "figures"
DATA_DIR = "data"

CSS = """
:root { --ink: #1d1d1f; --muted: #555; --line: #e3e3e3; --accent: #245; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0;
       color: var(--ink); background: #fafafa; line-height: 1.45; font-size: 16px; }
header { background: #243447; color: #fff; padding: 1em 1.5em; }
header h1 { margin: 0 0 .2em 0; font-size: 1.5em; overflow-wrap: anywhere; }
header p { margin: 0; opacity: .85; overflow-wrap: anywhere; }
.layout { display: grid; grid-template-columns: 15rem minmax(0, 1fr); align-items: start; }
nav { position: sticky; top: 0; max-height: 100vh; overflow-y: auto; padding: 1em .8em; font-size: .9em;
      border-right: 1px solid var(--line); background: #fff; }
nav a { display: block; color: var(--accent); text-decoration: none; padding: .1em 0; overflow-wrap: anywhere; }
nav a:hover { text-decoration: underline; }
nav h4 { margin: .8em 0 .2em 0; font-size: .8em; text-transform: uppercase; color: var(--muted); }
main { padding: .5em 1.5em 3em 1.5em; min-width: 0; max-width: 1400px; }
.toolbar { position: sticky; top: 0; z-index: 5; background: #fafafa; border-bottom: 1px solid var(--line);
           padding: .5em 0; display: flex; flex-wrap: wrap; gap: .4em 1.2em; align-items: center; font-size: .9em; }
.toolbar label { white-space: nowrap; }
.toolbar select { max-width: 100%; font-size: 1em; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 1em 1.2em; margin: 1em 0; }
h2 { margin-top: .2em; border-bottom: 2px solid #e8e8e8; padding-bottom: .2em; overflow-wrap: anywhere; }
h3 { margin-bottom: .4em; }
.tags span { display: inline-block; font-size: .75em; border: 1px solid #ccd; border-radius: 3px;
             padding: 0 .4em; margin-right: .3em; color: #335; background: #f4f6fb; }
figure { margin: .8em 0 1.2em 0; }
.scroll { overflow-x: auto; max-width: 100%; }
figure img { width: 100%; height: auto; border: 1px solid #eee; background: #fff; display: block; }
figcaption, p.files { font-size: .85em; color: var(--muted); margin-top: .3em; overflow-wrap: anywhere; }
.plot { width: 100%; min-height: 320px; }
table { border-collapse: collapse; font-size: .85em; margin: .3em 0 .3em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; white-space: nowrap; }
th { background: #f1f3f5; }
td.text, th.text { text-align: left; white-space: normal; min-width: 6em; }
td.empty { color: #aaa; text-align: center; }
tr.level th { background: #e6e9ef; text-align: left; }
pre { background: #f6f8fa; padding: .6em; overflow-x: auto; font-size: .8em; margin: 0; max-width: 100%; }
details { margin: .5em 0; }
summary { cursor: pointer; font-weight: 600; }
p.note { color: #6b4700; background: #fff8e6; border-left: 4px solid #f0b429; padding: .4em .8em; }
div.warnings { background: #fff1f0; border-left: 4px solid #d64545; padding: .4em .8em; margin: .6em 0; }
div.warnings p, div.warnings ul { margin: .2em 0; }
.explain { max-width: 60em; }
ul.findings li { margin: .3em 0; }
td small { display: block; font-size: .8em; opacity: .9; white-space: nowrap; }
td.ns { outline: 2px dashed #d62728; outline-offset: -3px; font-style: italic; }
div.howto { background: #f4f6fb; border-left: 4px solid #245; padding: .4em .8em; margin: .6em 0; max-width: 60em; }
div.howto h3 { margin: .2em 0; }
div.howto li { margin: .25em 0; }
button.copy { font-size: .8em; margin: .2em 0 .8em 0; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 34rem), 1fr)); gap: 1em; }
@media (max-width: 1000px) {
  .layout { display: block; }
  nav { position: static; max-height: none; border-right: 0; border-bottom: 1px solid var(--line);
        display: flex; flex-wrap: nowrap; overflow-x: auto; gap: .2em 1em; white-space: nowrap; }
  nav h4 { display: none; }
  nav a { display: inline-block; }
  main { padding: .3em .6em 2em .6em; }
  section { padding: .8em .7em; }
  .toolbar { position: static; }
}
@media print {
  nav, .toolbar, button.copy { display: none; }
  .layout { display: block; }
  section { break-inside: avoid-page; border: 0; }
  .rs-measure { display: block !important; }
}
"""


@dataclass
class Section:
    """One ``<section>`` of the report page.

    Attributes
    ----------
    anchor : str
        The section's HTML id, linked from the navigation.
    title : str
        The section heading.
    parts : list of str
        HTML fragments, in page order.
    classes : str
        Extra CSS classes of the section element.
    attributes : dict of str to str
        Extra HTML attributes (``data-*``), escaped when rendered.
    """

    anchor: str
    title: str
    parts: list[str] = field(default_factory=list)
    classes: str = ""
    attributes: dict[str, str] = field(default_factory=dict)

    def render(self) -> str:
        """Render the section as HTML.

        Returns
        -------
        str
            The ``<section>`` element.
        """
        extra = "".join(f' {esc(k)}="{esc(v)}"' for k, v in self.attributes.items())
        cls = f' class="{esc(self.classes)}"' if self.classes else ""
        return f'<section id="{esc(self.anchor)}"{cls}{extra}><h2>{esc(self.title)}</h2>{"".join(self.parts)}</section>'


def esc(value: Any) -> str:
    """HTML-escape any value's text (quotes included).

    Parameters
    ----------
    value : object
        Anything; its ``str`` is escaped.

    Returns
    -------
    str
        The escaped text.
    """
    return html.escape(str(value), quote=True)


def note_html(text: str) -> str:
    """Render a highlighted note paragraph.

    Parameters
    ----------
    text : str
        Plain text (escaped).

    Returns
    -------
    str
        The ``<p class="note">`` element.
    """
    return f'<p class="note">{esc(text)}</p>'


def figure_html(files: FigureFiles, caption: str, alt: str) -> str:
    """Render a ``<figure>`` with the PNG inlined as a data URI and links to its PNG and SVG files.

    The image never shrinks below the width at which its smallest text is 9 CSS pixels; a narrower screen
    scrolls it sideways instead.

    Parameters
    ----------
    files : FigureFiles
        The saved figure.
    caption : str
        The caption (plain text; escaped).
    alt : str
        The alternative text (plain text; escaped).

    Returns
    -------
    str
        The ``<figure>`` element.
    """
    data = base64.b64encode(files.png.read_bytes()).decode("ascii")
    style = f' style="min-width:{min_display_width(files.width_px)}px"' if files.width_px else ""
    return (
        f'<figure><div class="scroll"><img src="data:image/png;base64,{data}" alt="{esc(alt)}"{style}></div>'
        f"<figcaption>{esc(caption)} {files_links(files)}</figcaption></figure>"
    )


def files_links(files: FigureFiles, csv: str | None = None) -> str:
    """Links to a figure's PNG and SVG files (and a CSV of its data), relative to the page.

    Parameters
    ----------
    files : FigureFiles
        The saved figure.
    csv : str, optional
        A data file's path relative to the page.

    Returns
    -------
    str
        A ``<span>`` of links.
    """
    links = [
        f'<a href="{FIGURE_DIR}/{esc(files.png.name)}">PNG</a>',
        f'<a href="{FIGURE_DIR}/{esc(files.svg.name)}">SVG</a>',
    ]
    if csv is not None:
        links.append(f'<a href="{esc(csv)}">CSV</a>')
    return f'<span class="links">[{" · ".join(links)}]</span>'


def shade(value: float, vmin: float, vmax: float, larger_is_similar: bool) -> str:
    """An inline style colouring a table cell like the heatmaps: brighter = more similar.

    Parameters
    ----------
    value : float
        The cell's value.
    vmin, vmax : float
        The scale (the row's or table's range).
    larger_is_similar : bool
        False for distances (reversed colour map).

    Returns
    -------
    str
        ``background:#rrggbb;color:#fff`` (or dark text on bright cells); empty for a non-finite value.
    """
    if not np.isfinite(value):
        return ""
    cmap = matplotlib.colormaps[SIMILARITY_CMAP if larger_is_similar else DISTANCE_CMAP]
    position = 0.5 if vmax <= vmin else (value - vmin) / (vmax - vmin)
    red, green, blue, _ = cmap(0.15 + 0.85 * position)  # the darkest end is hard to read on
    ink = "#000" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "#fff"
    return f"background:#{int(red * 255):02x}{int(green * 255):02x}{int(blue * 255):02x};color:{ink}"


def cell_html(value: Any, digits: int = 3, style: str = "", title: str = "", attrs: str = "") -> str:
    """Render one table cell: floats rounded (NaN as an em dash), integers as is, anything else as text.

    Parameters
    ----------
    value : object
        The cell's value.
    digits : int, default 3
        Decimals of a float.
    style : str, optional
        An inline style (see `shade`).
    title : str, optional
        A tooltip (plain text; escaped).
    attrs : str, optional
        Extra attributes, already escaped.

    Returns
    -------
    str
        The ``<td>`` element.
    """
    extra = (f' style="{style}"' if style else "") + (f' title="{esc(title)}"' if title else "") + attrs
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return f'<td class="empty"{attrs}>—</td>'
        return f"<td{extra}>{value:.{digits}f}</td>"
    if isinstance(value, (int, np.integer, bool, np.bool_)):
        return f"<td{extra}>{esc(value)}</td>"
    return f'<td class="text"{extra}>{esc(value)}</td>'


def table_html(body: str, copy: bool = True) -> str:
    """Wrap a ``<table>`` so that it scrolls sideways instead of overflowing, with a copy button.

    Parameters
    ----------
    body : str
        The ``<table>`` element.
    copy : bool, default True
        Add a button that copies the table as tab-separated text.

    Returns
    -------
    str
        The wrapped table.
    """
    button = '<button type="button" class="copy" data-copy-table>Copy table (tab-separated)</button>' if copy else ""
    return f'<div class="scroll">{body}</div>{button}'


def frame_html(
    frame: pd.DataFrame,
    index_title: str | None = None,
    digits: int = 3,
    shading: Callable[[float], str] | None = None,
    copy: bool = True,
) -> str:
    """Render a DataFrame as a scrollable HTML table; floats rounded to `digits`, NaN shown as an em dash.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table.
    index_title : str, optional
        The index column's header; None to leave the index out.
    digits : int, default 3
        Decimals of floats.
    shading : callable, optional
        Value -> inline style of a float cell (see `shade`).
    copy : bool, default True
        Add a copy button.

    Returns
    -------
    str
        The table HTML.
    """
    header = [f'<th class="text">{esc(index_title)}</th>'] if index_title is not None else []
    header += [f'<th class="text">{esc(c)}</th>' for c in frame.columns]
    rows = []
    for index, row in frame.iterrows():
        cells = [f'<th class="text">{esc(index)}</th>'] if index_title is not None else []
        for value in row:
            is_float = isinstance(value, (float, np.floating))
            style = shading(float(value)) if shading is not None and is_float else ""
            cells.append(cell_html(value, digits, style))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<table><thead><tr>{''.join(header)}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return table_html(table, copy)


def matrix_shading(frame: pd.DataFrame, larger_is_similar: bool) -> Callable[[float], str] | None:
    """A `shade` function over the finite range of a numeric frame, or None when it has no finite value.

    Parameters
    ----------
    frame : pandas.DataFrame
        A numeric table.
    larger_is_similar : bool
        False for distances.

    Returns
    -------
    callable or None
        Value -> inline style.
    """
    values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    vmin, vmax = float(finite.min()), float(finite.max())
    return lambda value: shade(value, vmin, vmax, larger_is_similar)


def bullet_list(items: Sequence[str], cls: str = "") -> str:
    """Render plain-text items as an HTML list.

    Parameters
    ----------
    items : sequence of str
        Plain text (escaped).
    cls : str, optional
        The list's CSS class.

    Returns
    -------
    str
        The ``<ul>`` element.
    """
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<ul{attr}>" + "".join(f"<li>{esc(item)}</li>" for item in items) + "</ul>"
