"""Write a report directory: every figure as PNG + SVG, tidy CSVs, and one self-contained ``index.html``.

The HTML needs nothing but itself: figures are PNG data URIs, the CSS is inline, and there are no scripts
or links to fetch. The SVGs sit beside it in ``figures/`` for print-quality use.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations, permutations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tqdm import tqdm

from reprsim import __version__
from reprsim.analysis.aggregate import larger_means_similar, model_matrix, model_to_model
from reprsim.analysis.clustering import cluster_layers, cluster_models
from reprsim.analysis.finetune import finetune_similarity
from reprsim.analysis.localisation import NEURON_MEASURE, SUBSPACE_MEASURE, localisation_scores
from reprsim.report.figures import (
    FigureFiles,
    PairPanel,
    plot_block_heatmap,
    plot_dendrogram,
    plot_finetune,
    plot_localisation,
    plot_pair_grid,
    save_figure,
    slug,
)
from reprsim.results import LEVELS, LayerId, ResultTable

FIGURE_DIR = "figures"
INDEX = "index.html"

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0;
       color: #1d1d1f; background: #fafafa; line-height: 1.45; }
header { background: #243447; color: #fff; padding: 1.2em 2em; }
header h1 { margin: 0 0 .2em 0; font-size: 1.6em; }
header p { margin: 0; opacity: .85; }
nav { background: #fff; border-bottom: 1px solid #ddd; padding: .5em 2em;
      position: sticky; top: 0; z-index: 1; }
nav a { margin-right: 1.2em; color: #245; text-decoration: none; font-size: .95em; }
main { padding: 1em 2em 3em 2em; max-width: 1500px; }
section { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; padding: 1em 1.4em;
          margin: 1.2em 0; }
h2 { margin-top: .2em; border-bottom: 2px solid #e8e8e8; padding-bottom: .2em; }
h3 { margin-bottom: .4em; }
figure { margin: .8em 0 1.4em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; background: #fff; display: block; }
figcaption { font-size: .85em; color: #555; margin-top: .3em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0 1em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f1f3f5; }
td.text, th.text { text-align: left; }
td.empty { color: #aaa; text-align: center; }
pre { background: #f6f8fa; padding: .6em; overflow-x: auto; font-size: .8em; margin: 0; }
details { margin: .5em 0; }
summary { cursor: pointer; font-weight: 600; }
p.note { color: #8a5a00; background: #fff8e6; border-left: 4px solid #f0b429; padding: .4em .8em; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.grid figure { flex: 1 1 420px; max-width: 720px; }
"""


@dataclass
class Section:
    """One ``<section>`` of the report page.

    Attributes
    ----------
    anchor : str
        The section's HTML id, linked from the navigation bar.
    title : str
        The section heading.
    parts : list of str
        HTML fragments, in page order.
    """

    anchor: str
    title: str
    parts: list[str] = field(default_factory=list)


@dataclass
class FigureWriter:
    """Save figures under one directory with unique file stems and render them as ``<figure>`` HTML.

    Attributes
    ----------
    directory : Path
        Where the PNG and SVG files go (created on the first save).
    progress : tqdm
        A progress bar advanced by one per figure saved.
    used : set of str
        The file stems taken so far; a repeated stem gets a ``-2``, ``-3``, ... suffix.
    """

    directory: Path
    progress: tqdm
    used: set[str] = field(default_factory=set)

    def add(self, build: Callable[[], Figure], stem: str, caption: str, alt: str) -> str:
        """Build and save a figure (PNG + SVG) and return its ``<figure>`` element with the PNG inlined.

        Parameters
        ----------
        build : callable
            Takes no argument and returns the `matplotlib.figure.Figure` to save.
        stem : str
            The file name stem; it is made filename-safe and unique within the directory.
        caption : str
            The figure caption (plain text; escaped).
        alt : str
            The image's alternative text (plain text; escaped).

        Returns
        -------
        str
            The ``<figure>`` HTML element.
        """
        stem = self._unique(slug(stem))
        files = save_figure(build(), self.directory, stem)
        self.progress.update(1)
        return _figure_html(files, caption, alt)

    def _unique(self, stem: str) -> str:
        """Return `stem`, or `stem` with the first free ``-k`` suffix, and mark it used."""
        candidate, k = stem, 2
        while candidate in self.used:
            candidate, k = f"{stem}-{k}", k + 1
        self.used.add(candidate)
        return candidate


def _esc(value: Any) -> str:
    """HTML-escape any value's text (quotes included)."""
    return html.escape(str(value), quote=True)


def _figure_html(files: FigureFiles, caption: str, alt: str) -> str:
    """Render a ``<figure>`` with the PNG embedded as a base64 data URI, so the page needs no other file."""
    data = base64.b64encode(files.png.read_bytes()).decode("ascii")
    names = f"{FIGURE_DIR}/{files.png.name}, {FIGURE_DIR}/{files.svg.name}"
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(alt)}">'
        f"<figcaption>{_esc(caption)} <span>[{_esc(names)}]</span></figcaption></figure>"
    )


def _note_html(text: str) -> str:
    """Render a highlighted note paragraph."""
    return f'<p class="note">{_esc(text)}</p>'


def _frame_html(frame: pd.DataFrame, index_title: str | None = None, digits: int = 3) -> str:
    """Render a DataFrame as a plain HTML table; floats rounded to `digits`, NaN shown as an em dash."""
    header = []
    if index_title is not None:
        header.append(f'<th class="text">{_esc(index_title)}</th>')
    header += [f'<th class="text">{_esc(c)}</th>' for c in frame.columns]
    rows = []
    for index, row in frame.iterrows():
        cells = [f'<th class="text">{_esc(index)}</th>'] if index_title is not None else []
        for value in row:
            cells.append(_cell_html(value, digits))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{''.join(header)}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cell_html(value: Any, digits: int) -> str:
    """Render one table cell: floats rounded (NaN as an em dash), integers as is, anything else as text."""
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return '<td class="empty">—</td>'
        return f"<td>{value:.{digits}f}</td>"
    if isinstance(value, (int, np.integer, bool, np.bool_)):
        return f"<td>{_esc(value)}</td>"
    return f'<td class="text">{_esc(value)}</td>'


def _provenance_html(provenance: Mapping[str, Any]) -> str:
    """Render the top-level provenance keys as a table, nested values as pretty-printed JSON."""
    if not provenance:
        return _note_html("This results table carries no provenance.")
    rows = []
    for key, value in provenance.items():
        if isinstance(value, (dict, list)):
            shown = f"<pre>{_esc(json.dumps(value, indent=2, sort_keys=True))}</pre>"
        else:
            shown = _esc(value)
        rows.append(f'<tr><th class="text">{_esc(key)}</th><td class="text">{shown}</td></tr>')
    return f"<table><tbody>{''.join(rows)}</tbody></table>"


def _summary_frame(table: ResultTable) -> pd.DataFrame:
    """Summarise each measure: level, direction, table rows, rows used, whether a row subsample was used."""
    frame = table.frame
    grouped = frame.groupby("measure", sort=False)
    return pd.DataFrame(
        {
            "level": grouped["level"].first(),
            "direction": grouped["direction"].first(),
            "rows in table": grouped.size(),
            "n_rows used (min)": grouped["n_rows"].min(),
            "n_rows used (max)": grouped["n_rows"].max(),
            "subsampled": grouped["subsample"].any().map({True: "yes", False: "no"}),
        }
    )


def _full_or_blockwise(
    table: ResultTable, measure: str, models: Sequence[str]
) -> tuple[list[LayerId], np.ndarray]:
    """Return the all-layers matrix of a measure, with model blocks that were not computed as NaN."""
    labels = table.layer_ids(models, measure)
    try:
        return labels, table.matrix(measure, models).values
    except KeyError:
        pass
    values = np.full((len(labels), len(labels)), np.nan)
    starts = {}
    position = 0
    for model in models:
        starts[model] = position
        position += len(table.layers(model, measure))
    for model_a in models:
        for model_b in models:
            try:
                block = table.pair_matrix(measure, model_a, model_b)
            except KeyError:
                continue
            ra, rb = starts[model_a], starts[model_b]
            values[ra : ra + block.shape[0], rb : rb + block.shape[1]] = block
    return labels, values


def parse_finetuned(spec: str) -> tuple[str, list[str]]:
    """Parse the CLI form ``BASE:FT1,FT2`` of a fine-tuning comparison.

    Parameters
    ----------
    spec : str
        The base model, a colon, then the fine-tuned models separated by commas. Whitespace around names is
        removed and empty names are ignored.

    Returns
    -------
    base : str
        The base model.
    finetuned : list of str
        The fine-tuned models.

    Raises
    ------
    ValueError
        If there is no colon, the base is empty or no fine-tuned model is named (the message cites
        ``--finetuned``).

    Examples
    --------
    >>> parse_finetuned("bert:bert-squad, bert-mnli")
    ('bert', ['bert-squad', 'bert-mnli'])
    """
    base, sep, rest = spec.partition(":")
    finetuned = [name.strip() for name in rest.split(",") if name.strip()]
    if not sep or not base.strip() or not finetuned:
        raise ValueError(
            f"--finetuned expects BASE:FT1,FT2 (base model, colon, fine-tuned models), got {spec!r}"
        )
    return base.strip(), finetuned


def _measure_parts(
    table: ResultTable,
    measure: str,
    larger: bool,
    figures: FigureWriter,
) -> tuple[list[str], pd.DataFrame | None]:
    """Draw the figures and tables of one measure; return the HTML parts and its model-to-model rows."""
    models = _covered_models(table, measure)
    symmetric = table.is_symmetric(measure)
    parts = [f'<h3 id="{_esc(slug("m-" + measure))}">{_esc(measure)}</h3>']
    uncovered = [m for m in table.models() if m not in models]
    if uncovered:
        parts.append(_note_html(f"{measure} was not computed for {', '.join(uncovered)} (no rows); left out here."))
    labels, values = _full_or_blockwise(table, measure, models)
    if np.isnan(values).all():
        return [*parts, _note_html(f"{measure}: no model pair is complete; nothing to draw.")], None
    parts.append(
        figures.add(
            lambda: plot_block_heatmap(values, labels, measure, symmetric, larger),
            f"heatmap-{measure}",
            f"{measure}: every layer of every model against every layer. Lines separate models; "
            + ("symmetric measure." if symmetric else "row = from, column = to (sim(row → column))."),
            f"{measure} layer-by-layer heatmap",
        )
    )
    tidy = None
    if len(models) >= 2:
        try:
            tidy = model_to_model(table, measure, larger_is_similar=larger)
            wide = model_matrix(table, measure, larger_is_similar=larger)
        except (KeyError, ValueError) as exc:
            parts.append(_note_html(f"{measure}: model-to-model similarity skipped: {exc.args[0]}"))
        else:
            best = "max" if larger else "min"
            parts.append(
                "<p>Model to model: sim(row → column) = mean over the row model's layers of the "
                f"{best} over the column model's layers.</p>" + _frame_html(wide, "model")
            )
            parts.append(
                figures.add(
                    lambda: plot_dendrogram(
                        cluster_models(table, measure, larger_is_similar=larger),
                        larger,
                        f"Models clustered by {measure}",
                    ),
                    f"dendrogram-models-{measure}",
                    f"Average-linkage clustering of models on their symmetrised model-to-model {measure}.",
                    f"{measure} model dendrogram",
                )
            )
    if len(labels) < 2:
        pass  # a single representation has nothing to cluster
    elif not np.isnan(values).any():
        parts.append(
            figures.add(
                lambda: plot_dendrogram(
                    cluster_layers(table, measure, larger_is_similar=larger),
                    larger,
                    f"Layers clustered by {measure}",
                ),
                f"dendrogram-layers-{measure}",
                f"Average-linkage clustering of all layers on symmetric {measure}; labels coloured by model.",
                f"{measure} layer dendrogram",
            )
        )
    else:
        parts.append(_note_html(f"{measure}: layer dendrogram skipped: some layer pairs were not computed."))
    parts.append(_pair_parts(table, measure, larger, figures))
    return parts, tidy


def _covered_models(table: ResultTable, measure: str) -> list[str]:
    """List the models that `measure` has rows for (attention measures skip models stored without attention)."""
    return [model for model in table.models() if table.layers(model, measure)]


def _pair_parts(table: ResultTable, measure: str, larger: bool, figures: FigureWriter) -> str:
    """Draw layer x layer heatmaps of every model pair (both orders for directed measures), folded away."""
    symmetric = table.is_symmetric(measure)
    models = _covered_models(table, measure)
    pairs = combinations(models, 2) if symmetric else permutations(models, 2)
    panels, missing = [], []
    for model_a, model_b in pairs:
        try:
            values = table.pair_matrix(measure, model_a, model_b)
        except KeyError:
            missing.append(f"{model_a} → {model_b}")
            continue
        title = f"{model_a} vs {model_b}" if symmetric else f"{model_a} → {model_b}"
        panels.append(
            PairPanel(
                model_a,
                model_b,
                tuple(table.layers(model_a, measure)),
                tuple(table.layers(model_b, measure)),
                values,
                title,
            )
        )
    parts = []
    if missing:
        parts.append(_note_html(f"{measure}: pairs not computed: {', '.join(missing)}."))
    if panels:
        parts.append(
            figures.add(
                lambda: plot_pair_grid(panels, measure, larger, directed=not symmetric),
                f"pairs-{measure}",
                f"{measure}: each model pair layer by layer (rows: first model, columns: second), "
                "one colour scale for all panels.",
                f"{measure} model pairs layer by layer",
            )
        )
    if not parts:
        return ""
    summary = f"Model pairs, layer by layer ({len(panels)} panels)"
    return f"<details><summary>{summary}</summary>{''.join(parts)}</details>"


def _count_figures(table: ResultTable, finetuned: Mapping[str, Sequence[str]]) -> int:
    """Bound from above the number of figures a report draws, for the progress bar."""
    per_measure = 4  # block heatmap, model and layer dendrograms, model-pair grid
    return len(table.measures()) * per_measure + 1 + 2 * len(finetuned)


def write_report(
    table: ResultTable,
    out_dir: str | Path,
    finetuned: Mapping[str, Sequence[str]] | None = None,
    larger_is_similar: Mapping[str, bool] | None = None,
    title: str = "reprsim report",
    progress: bool = True,
) -> Path:
    """Write an HTML report of a results table: figures, CSVs and one self-contained ``index.html``.

    For each level (representation, then attention) and measure, the page shows a heatmap of every layer
    against every layer (model blocks that were not computed drawn grey), the model-to-model table, model and
    layer dendrograms (average linkage) and the layer x layer heatmaps of every model pair; then localisation
    scores (when the table has maxsim and svcca) and one section per fine-tuning comparison. An analysis that
    the table cannot support (a missing pair, a missing measure) is replaced by a note on the page rather than
    failing the report.

    Files written under `out_dir`:

    - ``index.html``: the page; figures are inlined as PNG data URIs, so it needs no other file;
    - ``figures/``: every figure as PNG and SVG;
    - ``model_to_model.csv``: the model-to-model rows of every measure for which they could be computed (see
      `reprsim.analysis.model_to_model`), when there is at least one;
    - ``localisation.csv``: the localisation scores, when they could be computed;
    - ``finetune-<base>.csv``: one per fine-tuning comparison that could be computed.

    Parameters
    ----------
    table : ResultTable
        The results table (not empty).
    out_dir : str or Path
        The report directory, created if needed; existing files of the same names are overwritten.
    finetuned : mapping of str to sequence of str, optional
        Base model -> its fine-tuned models (see `parse_finetuned` for the CLI form); each base gets a section
        comparing every fine-tuned layer with the same base layer.
    larger_is_similar : mapping of str to bool, optional
        Per measure, whether larger means more similar, overriding the measure registry; needed only for
        measures outside the registry.
    title : str, default "reprsim report"
        The page title.
    progress : bool, default True
        Show a progress bar over the figures drawn.

    Returns
    -------
    Path
        The path of ``index.html``.

    Raises
    ------
    ValueError
        If `table` is not a `ResultTable` or is empty, or a fine-tuned model list is a string or empty.
    KeyError
        If a fine-tuning comparison names a model the table lacks (checked before anything is drawn), or a
        measure is outside the registry and `larger_is_similar` does not give its orientation.
    """
    if not isinstance(table, ResultTable):
        raise ValueError(f"write_report needs a ResultTable, got {type(table).__name__}")
    if len(table) == 0:
        raise ValueError("the results table is empty; there is nothing to report")
    finetuned = {base: list(models) for base, models in (finetuned or {}).items()}
    _check_finetuned(table, finetuned)
    overrides = dict(larger_is_similar or {})
    orientation = {m: larger_means_similar(m, overrides.get(m)) for m in table.measures()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=_count_figures(table, finetuned), desc="report figures", unit="fig", disable=not progress)
    figures = FigureWriter(out / FIGURE_DIR, bar)
    sections: list[Section] = []
    tidy_parts: list[pd.DataFrame] = []
    try:
        for level in LEVELS:
            measures = table.measures(level)
            if not measures:
                continue
            section = Section(f"level-{level}", f"{level.capitalize()} level")
            for measure in measures:
                parts, tidy = _measure_parts(table, measure, orientation[measure], figures)
                section.parts += parts
                if tidy is not None:
                    tidy_parts.append(tidy)
            sections.append(section)
        sections.append(_localisation_section(table, figures, out))
        for base, models in finetuned.items():
            sections.append(_finetune_section(table, base, list(models), orientation, figures, out))
    finally:
        bar.close()
    if tidy_parts:
        pd.concat(tidy_parts, ignore_index=True).to_csv(out / "model_to_model.csv", index=False)
    page = _render_page(table, sections, title)
    index = out / INDEX
    index.write_text(page, encoding="utf-8")
    return index


def _check_finetuned(table: ResultTable, finetuned: Mapping[str, Sequence[str]]) -> None:
    """Check the fine-tuning comparisons before anything is drawn: non-empty lists of known models."""
    known = table.models()
    for base, models in finetuned.items():
        if isinstance(models, str) or not models:
            raise ValueError(f"fine-tuned models of {base!r} must be a non-empty list, got {models!r}")
        unknown = [m for m in [base, *models] if m not in known]
        if unknown:
            raise KeyError(f"fine-tuning models {unknown} are not in the results table; it has {known}")


def _localisation_section(table: ResultTable, figures: FigureWriter, out: Path) -> Section:
    """Build the localisation section (and write localisation.csv), or a note saying why it was skipped."""
    section = Section("localisation", "Localisation")
    try:
        scores = localisation_scores(table)
    except (KeyError, ValueError) as exc:
        reason = exc.args[0] if exc.args else str(exc)
        section.parts.append(_note_html(f"Localisation scores not computed: {reason}"))
        return section
    scores.to_csv(out / "localisation.csv", index=False)
    section.parts.append(
        f"<p>Per layer: z-score (across all layers) of its mean {NEURON_MEASURE} to every layer of every "
        f"other model, minus the z-score of its mean {SUBSPACE_MEASURE}. "
        "High = information in individual neurons, low = distributed.</p>"
    )
    section.parts.append(
        figures.add(
            lambda: plot_localisation(scores, NEURON_MEASURE, SUBSPACE_MEASURE),
            "localisation",
            "Localisation score per layer.",
            "localisation score per layer",
        )
    )
    shown = scores.set_index(["model", "layer"])
    shown.index = [f"{m} L{layer}" for m, layer in shown.index]
    section.parts.append(
        f"<details><summary>Localisation table</summary>{_frame_html(shown, 'layer')}</details>"
    )
    return section


def _finetune_section(
    table: ResultTable,
    base: str,
    models: list[str],
    orientation: Mapping[str, bool],
    figures: FigureWriter,
    out: Path,
) -> Section:
    """Build one fine-tuning section (and write its CSV), or a note saying why it was skipped."""
    section = Section(slug(f"finetune-{base}"), f"Fine-tuning: {base}")
    try:
        frame = finetune_similarity(table, base, models)
    except (KeyError, ValueError) as exc:  # e.g. one layer pair not computed: the rest of the report stands
        section.parts.append(_note_html(f"fine-tuning against {base} skipped: {exc.args[0]}"))
        return section
    frame.to_csv(out / f"finetune-{slug(base)}.csv", index=False)
    section.parts.append(
        f"<p>Each fine-tuned model ({_esc(', '.join(models))}) layer by layer against the same layer of "
        f"{_esc(base)}; directed measures use sim(fine-tuned → base).</p>"
    )
    for level in LEVELS:
        if not (frame["level"] == level).any():
            continue

        def build(level: str = level) -> Figure:
            return plot_finetune(frame, base, level, orientation)

        section.parts.append(
            figures.add(
                build,
                f"finetune-{base}-{level}",
                f"{level.capitalize()}-level similarity of each fine-tuned layer to the base's same layer.",
                f"fine-tuning similarity to {base}, {level} level",
            )
        )
    return section


def _render_page(table: ResultTable, sections: Sequence[Section], title: str) -> str:
    """Render the whole HTML document: the run overview, then `sections`."""
    models = table.models()
    layers_html = _frame_html(
        pd.DataFrame(
            {
                "layers": [len(table.layers(m)) for m in models],
                "layer ids": [_ranges(table.layers(m)) for m in models],
            },
            index=models,
        ),
        "model",
    )
    overview = Section(
        "overview",
        "Run",
        [
            f"<p>{len(table)} rows, {len(models)} models, {len(table.measures())} measures.</p>",
            "<h3>Models</h3>" + layers_html,
            "<h3>Measures</h3>" + _frame_html(_summary_frame(table), "measure"),
            "<h3>Provenance</h3>" + _provenance_html(table.provenance),
        ],
    )
    every = [overview, *sections]
    nav = "".join(f'<a href="#{_esc(s.anchor)}">{_esc(s.title)}</a>' for s in every)
    body = "".join(
        f'<section id="{_esc(s.anchor)}"><h2>{_esc(s.title)}</h2>{"".join(s.parts)}</section>' for s in every
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{_esc(title)}</h1><p>reprsim {_esc(__version__)} · models: {_esc(', '.join(models))}</p>"
        f"</header><nav>{nav}</nav><main>{body}</main></body></html>\n"
    )


def _ranges(layers: Sequence[int]) -> str:
    """Write a sorted list of ints compactly, e.g. [0, 1, 2, 5] -> "0-2, 5"."""
    runs: list[list[int]] = []
    for layer in layers:
        if runs and layer == runs[-1][1] + 1:
            runs[-1][1] = layer
        else:
            runs.append([layer, layer])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
