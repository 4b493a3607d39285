"""Write a report directory: figures as PNG + SVG, tidy CSVs, and one self-contained ``index.html``.

The page opens with the findings (a summary, every measure's model-to-model values side by side, the model
dendrogram and what they show), then one section per measure, localisation and fine-tuning, and the run
details last. It needs nothing but itself: plotly.js and the page's script are inlined once, the heatmap data
travels as JSON, figures without an interactive version are PNG data URIs, and nothing is fetched. The PNG
and SVG files of every figure sit beside it in ``figures/``, the data of each measure in ``data/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from reprsim import __version__
from reprsim.analysis.aggregate import larger_means_similar
from reprsim.analysis.model_stats import ModelStats, model_stats
from reprsim.report.explain import random_controls
from reprsim.report.findings import CrossMeasure, cross_measure, findings
from reprsim.report.interactive import data_script, page_scripts
from reprsim.report.page import (
    CSS,
    FIGURE_DIR,
    Section,
    bullet_list,
    esc,
    figure_html,
    frame_html,
    note_html,
)
from reprsim.report.provenance import run_details_html
from reprsim.report.sections import (
    FigureSaver,
    MeasureContext,
    covered_models,
    cross_table_html,
    finetune_section,
    localisation_section,
    measure_anchor,
    measure_section,
)
from reprsim.report.significance import StatsView, stats_view
from reprsim.report.stats_html import covered_stats, howto_html, significance_findings
from reprsim.report.style import FigureFiles
from reprsim.report.warning_log import recorded_warnings
from reprsim.results import LEVELS, ResultTable
from reprsim.results.arrays import expects_arrays

INDEX = "index.html"
# The measure whose model dendrogram opens the page, first present wins; else the first one that clusters.
SUMMARY_MEASURES = ("linear_cka", "debiased_cka", "procrustes", "svcca", "rsa")


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


def _count_figures(table: ResultTable, finetuned: Mapping[str, Sequence[str]]) -> int:
    """Bound from above the number of figures a report draws, for the progress bar."""
    per_measure = 5 + int(table.has_arrays())  # heatmap, 2 dendrograms, pair grid, depth; the interval plot
    return len(table.measures()) * per_measure + 1 + 2 * len(finetuned)


def _check_finetuned(table: ResultTable, finetuned: Mapping[str, Sequence[str]]) -> None:
    """Check the fine-tuning comparisons before anything is drawn: non-empty lists of known models."""
    known = table.models()
    for base, models in finetuned.items():
        if isinstance(models, str) or not models:
            raise ValueError(f"fine-tuned models of {base!r} must be a non-empty list, got {models!r}")
        unknown = [m for m in [base, *models] if m not in known]
        if unknown:
            raise KeyError(f"fine-tuning models {unknown} are not in the results table; it has {known}")


def _summary_frame(table: ResultTable) -> pd.DataFrame:
    """Summarise each measure: level, direction, table rows, rows used, whether a row subsample was used."""
    grouped = table.frame.groupby("measure", sort=False)
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


def _ranges(layers: Sequence[int]) -> str:
    """Write a sorted list of ints compactly, e.g. [0, 1, 2, 5] -> "0-2, 5"."""
    runs: list[list[int]] = []
    for layer in layers:
        if runs and layer == runs[-1][1] + 1:
            runs[-1][1] = layer
        else:
            runs.append([layer, layer])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _summary_section(table: ResultTable, cross: CrossMeasure, controls: Mapping[str, str | None],
                     warnings: Sequence[Mapping[str, Any]], dendrograms: Mapping[str, FigureFiles],
                     view: StatsView | None = None, stats: Mapping[str, ModelStats] | None = None) -> Section:
    """The page's opening: what was compared, every measure side by side, the model dendrogram, the findings.

    With statistics (`view`), the cross-measure table shows intervals and p-values, the findings say what the
    statistics support, and a "How to read this" note follows them.
    """
    from reprsim.report.sections import warnings_html

    provenance = table.provenance
    models = table.models()
    described = ", ".join(f"{m} ({len(table.layers(m))} layers)" for m in models)
    words = provenance.get("n_words")
    corpus = f"{words:,} words" if isinstance(words, int) else "an unrecorded number of words"
    digest = provenance.get("corpus_hash")
    corpus += f" (corpus hash {str(digest)[:12]}…)" if digest else ""
    parts = [f"<p><b>{len(models)} models</b>: {esc(described)}. <b>Corpus</b>: {esc(corpus)}. <b>{len(table):,} "
             f"rows</b> of layer-pair values under <b>{len(table.measures())} measures</b>.</p>"]
    general = [w for w in warnings if w["measure"] is None or w["measure"] not in table.measures()]
    parts.append(warnings_html(general, "computing the table"))
    if not cross.values.empty:
        anchors = {m: measure_anchor(m) for m in table.measures()}
        with_stats = "" if view is None else (
            f" Where the layer pairs have replicates and nulls, the cell gives the {view.level} interval and the "
            "p-value, and a value not above its null is outlined and says so.")
        parts.append(
            "<h3>Model pairs under every measure</h3><p>Each cell: the symmetric model-to-model value of a pair "
            "(the mean of both directions of \"mean over one model's layers of its best match in the other\"). "
            "Each row is shaded on its own range, brighter = more similar (distances are reversed), and its most "
            f"similar pair is bold; hover a cell for the two directions.{with_stats}</p>"
            + cross_table_html(cross, anchors, stats, table.alpha)
        )
    chosen = next((m for m in SUMMARY_MEASURES if m in dendrograms), next(iter(dendrograms), None))
    if chosen is not None:
        parts.append(f"<h3>Models clustered by {esc(chosen)}</h3>" + figure_html(
            dendrograms[chosen], f"Average-linkage clustering on the symmetric model-to-model {chosen}; each "
            "measure's own dendrogram is in its section.", f"model dendrogram, {chosen}"))
    warned = {m: sorted({w["category"] for w in warnings if w["measure"] == m}) for m in table.measures()}
    lines = findings(cross, controls, warned)
    if view is not None:
        lines += significance_findings(cross, stats or {}, view.alpha, view.level, controls)
    parts.append("<h3>What this shows</h3>" + bullet_list(lines, "findings")
                 + "<p class=\"files\">Computed from the table above: they describe these layers on this corpus, "
                 "not the models in general.</p>")
    if view is not None:
        parts.append(howto_html(view))
    elif expects_arrays(table.inference):
        parts.append(note_html("Statistics were asked for (see the run details) but none could be computed for "
                               "this table; its values are shown without intervals."))
    return Section("summary", "Summary", parts)


def _details_section(table: ResultTable, command: str | None) -> Section:
    """The run details, last: models and layers, measures, provenance."""
    models = table.models()
    layers = pd.DataFrame({"layers": [len(table.layers(m)) for m in models],
                           "layer ids": [_ranges(table.layers(m)) for m in models]}, index=models)
    return Section("run", "Run details", [
        f"<p>{len(table)} rows, {len(models)} models, {len(table.measures())} measures.</p>",
        "<h3>Layers</h3>" + frame_html(layers, "model"),
        "<h3>Measures</h3>" + frame_html(_summary_frame(table), "measure"),
        *run_details_html(table, command),
    ])


def _nav_html(table: ResultTable, sections: Sequence[Section]) -> str:
    """The navigation: the main sections, and one link per measure grouped by level."""
    links = []
    measure_ids = {measure_anchor(m) for m in table.measures()}
    for section in sections:
        if section.anchor in measure_ids:
            continue
        links.append(f'<a href="#{esc(section.anchor)}">{esc(section.title)}</a>')
        if section.anchor == "summary":
            for level in LEVELS:
                measures = [m for m in table.measures(level) if measure_anchor(m) in {s.anchor for s in sections}]
                if measures:
                    links.append(f"<h4>{esc(level)} measures</h4>")
                    links += [f'<a href="#{esc(measure_anchor(m))}">{esc(m)}</a>' for m in measures]
            links.append("<h4>analyses and details</h4>")
    return '<nav aria-label="sections">' + "".join(links) + "</nav>"


def _toolbar_html(table: ResultTable) -> str:
    """The measure selector, the model filter and the values-in-cells switch."""
    options = '<option value="">all measures</option>' + "".join(
        f'<option value="{esc(m)}">{esc(m)}</option>' for m in table.measures())
    boxes = "".join(f'<label><input type="checkbox" data-model="{esc(m)}" checked> {esc(m)}</label>'
                    for m in table.models())
    return ('<div class="toolbar" role="toolbar" aria-label="figure controls">'
            f'<label>Measure <select id="rs-measure">{options}</select></label>'
            f"<span>Models: {boxes}</span>"
            '<label><input type="checkbox" id="rs-annotate"> values in cells</label></div>'
            "<noscript><p class=\"note\">The interactive heatmaps need JavaScript; each one's static PNG and SVG "
            "are linked under it.</p></noscript>")


def _render_page(table: ResultTable, sections: Sequence[Section], title: str, payloads: Mapping[str, Any]) -> str:
    """Render the whole HTML document."""
    body = "".join(section.render() for section in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>reprsim {esc(__version__)} · models: {esc(', '.join(table.models()))}</p>"
        f'</header><div class="layout">{_nav_html(table, sections)}<main>{_toolbar_html(table)}{body}</main></div>'
        f"{data_script(table.models(), payloads)}{page_scripts()}</body></html>\n"
    )


def write_report(
    table: ResultTable,
    out_dir: str | Path,
    finetuned: Mapping[str, Sequence[str]] | None = None,
    larger_is_similar: Mapping[str, bool] | None = None,
    title: str = "reprsim report",
    progress: bool = True,
    command: str | None = None,
) -> Path:
    """Write an HTML report of a results table: figures, CSVs and one self-contained ``index.html``.

    The page opens with a summary (models, corpus, rows), a table of every measure's symmetric
    model-to-model value per model pair, shaded per measure, the model dendrogram and a short list of what the
    table shows. Then one section per measure (representation level first): an explanation from the measure
    registry, the warnings its computation raised (``provenance["warnings"]``, see
    `reprsim.report.warning_log`), baselines (random-weight controls, chance levels), the model-to-model
    tables, an interactive heatmap of every layer against every layer and one of every model pair (hover for
    both layers and the value; one colour scale per measure), and the model and layer dendrograms. Then
    localisation (when the table has maxsim and svcca), one section per fine-tuning comparison, and the run
    details (sources, versions, options, provenance). A measure selector and a model filter sit above the
    sections. An analysis the table cannot support is replaced by a note rather than failing the report.

    Files written under `out_dir`:

    - ``index.html``: the page; it needs no other file and no network;
    - ``figures/``: every figure as PNG and SVG (the heatmaps' static versions are linked from the page, the
      others also inlined);
    - ``data/<measure>.csv``: each measure's rows of the table;
    - ``model_to_model.csv``: the directed and symmetrised model-to-model rows of every measure for which they
      could be computed (see `reprsim.analysis.model_to_model`), when there is at least one;
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
    command : str, optional
        The command line (or study file) that made the report, shown in the run details.

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
    cross = cross_measure(table, orientation)
    controls = random_controls(table.models())
    warnings = recorded_warnings(table.provenance)
    view = stats_view(table)
    stats: dict[str, ModelStats] = {}
    if view is not None and table.has_arrays():
        stats = covered_stats(list(cross.values.index), lambda m: model_stats(
            table, m, covered_models(table, m), orientation[m], view.alpha))
    bar = tqdm(total=_count_figures(table, finetuned), desc="report figures", unit="fig", disable=not progress)
    saver = FigureSaver(out / FIGURE_DIR, bar)
    payloads: dict[str, dict[str, Any]] = {}
    measure_sections: list[Section] = []
    tail: list[Section] = []
    dendrograms: dict[str, FigureFiles] = {}
    try:
        for level in LEVELS:
            for measure in table.measures(level):
                ctx = MeasureContext(orientation[measure], cross, controls,
                                     [w for w in warnings if w["measure"] == measure], view, stats.get(measure))
                measure_sections.append(measure_section(table, measure, ctx, saver, payloads, out))
                files = saver.saved.get(f"dendrogram-models-{measure}")
                if files is not None:
                    dendrograms[measure] = files
        tail.append(localisation_section(table, saver, out))
        for base, models in finetuned.items():
            tail.append(finetune_section(table, base, list(models), orientation, saver, out))
    finally:
        bar.close()
    _write_model_to_model(cross, out)
    summary = _summary_section(table, cross, controls, warnings, dendrograms, view, stats)
    sections = [summary, *measure_sections, *tail, _details_section(table, command)]
    index = out / INDEX
    index.write_text(_render_page(table, sections, title, payloads), encoding="utf-8")
    return index


def _write_model_to_model(cross: CrossMeasure, out: Path) -> None:
    """Write model_to_model.csv: both directions of every pair with its symmetric value, per measure."""
    rows = []
    for (measure, (a, b)), (ab, ba) in cross.directed.items():
        symmetric = (ab + ba) / 2.0
        rows.append({"model_a": a, "model_b": b, "measure": measure, "value": ab, "symmetric": symmetric})
        rows.append({"model_a": b, "model_b": a, "measure": measure, "value": ba, "symmetric": symmetric})
    if rows:
        pd.DataFrame(rows).to_csv(out / "model_to_model.csv", index=False)
