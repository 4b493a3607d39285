"""The report's statistics in HTML: interval cells, model tables, the note, run details and findings.

Interval cells and the model-level tables, the "How to read this" note, the run details' inference options,
and the findings' significance sentences.

Everything here is drawn only when the table has statistics (`reprsim.report.significance.stats_view`); a
report of a table without them never calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from reprsim.analysis.model_stats import Difference, ModelStat, ModelStats, paired_difference
from reprsim.report.findings import CrossMeasure, best_pair, pair_label
from reprsim.report.page import esc, table_html
from reprsim.report.significance import StatsView, interval_text, p_text, verdict

MARK_SYMBOL = "×"


def stat_verdict(stat: ModelStat, larger_is_similar: bool, alpha: float) -> str:
    """The verdict of a model-level value (see `reprsim.report.significance.verdict`).

    Parameters
    ----------
    stat : ModelStat
        The value's statistics.
    larger_is_similar : bool
        False for distances.
    alpha : float
        The level.

    Returns
    -------
    str
        ``"not significant"``, ``"at chance"`` or ``""``.
    """
    return verdict(stat.p_value, stat.calibrated, stat.low, stat.high, stat.null_mean, larger_is_similar, alpha)


def stat_cell_html(stat: ModelStat, larger_is_similar: bool, alpha: float, style: str = "", attrs: str = "",
                   bold: bool = False, tip: str = "") -> str:
    """One table cell: the value with its interval, and its p-value and verdict on a second line.

    A value not above its null gets the class ``ns`` (dashed outline) and the verdict in words.

    Parameters
    ----------
    stat : ModelStat
        The value's statistics.
    larger_is_similar : bool
        False for distances.
    alpha : float
        The level.
    style : str, optional
        Inline style (shading).
    attrs : str, optional
        Extra attributes, already escaped.
    bold : bool, default False
        Bold the value (a row's most similar pair).
    tip : str, optional
        A tooltip (plain text).

    Returns
    -------
    str
        The ``<td>`` element.
    """
    said = stat_verdict(stat, larger_is_similar, alpha)
    text = esc(interval_text(stat.value, stat.low, stat.high))
    text = f"<b>{text}</b>" if bold else text
    note = p_text(stat.p_value, said)
    if stat.calibrated is not None:
        note = f"{note}; calibrated {stat.calibrated:.2f}" if note else f"calibrated {stat.calibrated:.2f}"
    cls = ' class="ns"' if said else ""
    extra = (f' style="{style}"' if style else "") + (f' title="{esc(tip)}"' if tip else "") + attrs
    small = f"<small>{esc(note)}</small>" if note else ""
    return f"<td{cls}{extra}>{text}{small}</td>"


def model_table_html(values: pd.DataFrame, lookup: Callable[[str, str], ModelStat | None], larger_is_similar: bool,
                     alpha: float, shading: Callable[[float], str] | None) -> str:
    """A model x model table whose cells show intervals and verdicts where the statistics exist.

    Parameters
    ----------
    values : pandas.DataFrame
        Model x model values (NaN on the diagonal).
    lookup : callable
        (row model, column model) -> the cell's statistics, or None.
    larger_is_similar : bool
        False for distances.
    alpha : float
        The level.
    shading : callable, optional
        Value -> inline style (`reprsim.report.page.matrix_shading`).

    Returns
    -------
    str
        The table HTML.
    """
    from reprsim.report.page import cell_html

    head = '<th class="text">model</th>' + "".join(f'<th class="text">{esc(c)}</th>' for c in values.columns)
    body = []
    for a, row in values.iterrows():
        cells = [f'<th class="text">{esc(a)}</th>']
        for b, value in row.items():
            value = float(value)
            stat = lookup(str(a), str(b)) if np.isfinite(value) else None
            style = shading(value) if shading is not None and np.isfinite(value) else ""
            cells.append(stat_cell_html(stat, larger_is_similar, alpha, style) if stat is not None
                         else cell_html(value, 3, style))
        body.append("<tr>" + "".join(cells) + "</tr>")
    return table_html(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def _methods_by_kind(view: StatsView, which: int) -> str:
    """"bootstrap (exact) for linear_cka, svcca; jackknife for rsa" from the recorded methods."""
    groups: dict[str, list[str]] = {}
    for measure, methods in view.methods.items():
        groups.setdefault(methods[which] or "not recorded", []).append(measure)
    return "; ".join(f"{method} for {', '.join(measures)}" for method, measures in groups.items())


def howto_html(view: StatsView) -> str:
    """The "How to read this" note: intervals, nulls, p-values, the mark and the calibrated score.

    Parameters
    ----------
    view : StatsView
        The table's statistics settings.

    Returns
    -------
    str
        A ``<div class="howto">`` element.
    """
    alpha = f"{view.alpha:g}"
    blocks = view.options.get("blocks")
    unit = f"{blocks} blocks of whole sentences" if blocks else "blocks of whole sentences"
    items = [
        f"<b>Intervals</b> (<code>value [low, high]</code>) are {esc(view.level)} intervals over {esc(unit)}: the "
        f"value's uncertainty from which sentences happened to be in the corpus. Method per measure: "
        f"{esc(_methods_by_kind(view, 0))}.",
        f"<b>Null</b>: what the value would be for unrelated representations, obtained by pairing the rows of one "
        f"side with permuted rows of the other. Method per measure: {esc(_methods_by_kind(view, 1))}. "
        "<b>p</b> is the permutation p-value (1 + #{null &ge; value}) / (K + 1).",
        f"<b>Marked</b> cells ({MARK_SYMBOL} on the heatmaps, dashed outline and words in the tables) are not above "
        f"their null: p &ge; {esc(alpha)} (\"not significant\"); where there is no p-value, a calibrated score of 0; "
        "where there is only an analytic null mean, an interval that reaches it (\"at chance\").",
        "<b>Calibrated</b> (Gröger, Wen &amp; Brbić 2026): clamp((s &minus; &tau;) / (1 &minus; &tau;), 0, 1), "
        f"&tau; the null's (1 &minus; {esc(alpha)}) quantile: 0 for any score the null reaches, 1 at the maximum. "
        "Raw CKA and CCA scores rise with width and depth alone; the calibrated score does not.",
        "<b>Model-level values</b> (the model-to-model tables) get their intervals and nulls by aggregating each "
        "replicate and each permutation of the layer pairs the same way as the value (the best match is taken "
        "inside every permutation): a percentile interval from bootstrap replicates, a t interval on G &minus; 1 "
        "degrees of freedom from leave-one-block-out values. Pairs whose layer pairs lack replicates show the value "
        "alone.",
    ]
    return ('<div class="howto" role="note"><h3>How to read this</h3><ul>'
            + "".join(f"<li>{item}</li>" for item in items) + "</ul></div>")


def measure_stats_html(view: StatsView, measure: str) -> str:
    """One line under a measure's heading: its interval and null methods and the level.

    Parameters
    ----------
    view : StatsView
        The table's statistics settings.
    measure : str
        The measure.

    Returns
    -------
    str
        A ``<p>`` element.
    """
    ci, null = view.methods.get(measure, ("", ""))
    return (f'<p class="files">Statistics: {esc(view.level)} intervals by {esc(ci or "a method not recorded")}; '
            f"null: {esc(null or 'not recorded')}. See \"How to read this\" in the summary.</p>")


def inference_items(view: StatsView) -> list[tuple[str, str]]:
    """The run details' inference options, as (term, HTML) rows.

    Parameters
    ----------
    view : StatsView
        The table's statistics settings.

    Returns
    -------
    list of (str, str)
        One row per option (alpha always), then the methods per measure.
    """
    names = {"ci": "interval method", "null": "null", "blocks": "blocks (G)", "resamples": "bootstrap replicates (B)",
             "permutations": "permutations (K)", "alpha": "alpha", "seed": "inference seed"}
    ordered = sorted(view.options, key=lambda k: list(names).index(k) if k in names else len(names))
    items = [(names.get(k, k), esc(view.options[k])) for k in ordered]
    if "alpha" not in view.options:
        items.append(("alpha", f"{view.alpha:g} (not recorded; the default)"))
    for measure, (ci, null) in view.methods.items():
        described = f"interval {esc(ci or 'not recorded')}; null {esc(null or 'not recorded')}"
        items.append((f"methods: {measure}", described))
    return items


def significance_findings(cross: CrossMeasure, stats: Mapping[str, ModelStats], alpha: float,
                          level: str, controls: Mapping[str, str | None] | None = None) -> list[str]:
    """Sentences on what the model-pair values' statistics support.

    Parameters
    ----------
    cross : CrossMeasure
        The cross-measure values.
    stats : mapping of str to ModelStats
        Per measure, the model-level statistics.
    alpha : float
        The level.
    level : str
        The interval's level, e.g. ``"95%"``.
    controls : mapping of str to str or None, optional
        Random-weight controls among the models (`reprsim.report.explain.random_controls`); with any, a
        sentence says under which measures the weakest trained pair is significantly more similar than the
        strongest pair with a control.

    Returns
    -------
    list of str
        Plain-text sentences (none when no value has statistics).
    """
    lines: list[str] = []
    judged, below = 0, []
    for measure, own in stats.items():
        larger = cross.larger_is_similar.get(measure, True)
        for pair, stat in own.symmetric.items():
            if stat.p_value is None and stat.calibrated is None and stat.null_mean is None:
                continue
            judged += 1
            said = stat_verdict(stat, larger, alpha)
            if said:
                below.append(f"{measure} {pair_label(pair)} ({said})")
    if judged:
        if below:
            shown = "; ".join(below[:8]) + ("; and others" if len(below) > 8 else "")
            lines.append(f"{len(below)} of {judged} model-pair values with a null baseline are not above it at alpha = "
                         f"{alpha:g}: {shown}. Read them as no evidence of shared structure.")
        else:
            lines.append(f"The model-pair value with a null baseline is above it at alpha = {alpha:g}." if judged == 1
                         else f"All {judged} model-pair values with a null baseline are above it at alpha = {alpha:g}.")
    lines += _lead_findings(cross, stats, alpha, level)
    lines += _control_significance(cross, stats, controls or {}, alpha, level)
    return lines


def difference_text(measure: str, difference: Difference) -> str:
    """One measure's paired difference, e.g. ``"linear_cka 0.21 [0.15, 0.27], p = 0.001"``."""
    return (f"{measure} {interval_text(difference.value, difference.low, difference.high)}, "
            f"{p_text(difference.p_value, '')}")


def _control_significance(cross: CrossMeasure, stats: Mapping[str, ModelStats], controls: Mapping[str, str | None],
                          alpha: float, level: str) -> list[str]:
    """Whether the weakest trained pair beats the strongest pair with a random-weight control, per measure.

    The difference is oriented so that a positive value means the trained pair is the more similar (trained
    minus control for similarities, control minus trained for distances).
    """
    if not controls:
        return []
    clear: list[str] = []
    unclear: list[str] = []
    for measure, own in stats.items():
        values = cross.pair_values(measure)
        larger = cross.larger_is_similar.get(measure, True)
        trained = {p: v for p, v in values.items() if p[0] not in controls and p[1] not in controls}
        control = {p: v for p, v in values.items() if p[0] in controls or p[1] in controls}
        sign = 1.0 if larger else -1.0
        if not trained or not control:
            continue
        weakest = min(trained, key=lambda p: sign * trained[p])
        strongest = max(control, key=lambda p: sign * control[p])
        weak_stat, strong_stat = own.get(*weakest), own.get(*strongest)
        if weak_stat is None or strong_stat is None:
            continue
        difference = (paired_difference(weak_stat, strong_stat, alpha) if larger
                      else paired_difference(strong_stat, weak_stat, alpha))
        if difference is None:
            continue
        text = (f"{difference_text(measure, difference)} ({pair_label(weakest)} vs "
                f"{pair_label(strongest)})")
        (clear if difference.value > 0 and difference.p_value <= alpha else unclear).append(text)
    if not clear and not unclear:
        return []
    line = (f"Trained beats random: the weakest pair of trained models is more similar than the strongest pair "
            f"with a random-weight control, by a paired {level} interval and p-value on the same sentence blocks, "
            f"under {len(clear)} of {len(clear) + len(unclear)} measures")
    line += f": {'; '.join(clear)}." if clear else "."
    if unclear:
        line += f" Not significant under {'; '.join(unclear)}."
    return [line]


def _lead_findings(cross: CrossMeasure, stats: Mapping[str, ModelStats], alpha: float, level: str) -> list[str]:
    """Whether each measure's most similar pair beats its runner-up by more than the paired interval allows."""
    clear: list[str] = []
    unclear: list[str] = []
    for measure, own in stats.items():
        values = cross.pair_values(measure)
        larger = cross.larger_is_similar.get(measure, True)
        top = best_pair(values, larger)
        if top is None:
            continue
        rest = {p: v for p, v in values.items() if p != top}
        second = best_pair(rest, larger) if len(rest) >= 2 else next(iter(rest), None)
        first_stat, second_stat = own.get(*top), own.get(*second) if second is not None else None
        if second is None or first_stat is None or second_stat is None:
            continue
        difference = paired_difference(first_stat, second_stat, alpha)
        if difference is None:
            continue
        text = (f"{measure}: {pair_label(top)} over {pair_label(second)} by "
                f"{interval_text(difference.value, difference.low, difference.high)}, "
                f"{p_text(difference.p_value, '')}")
        (clear if difference.excludes_zero else unclear).append(text)
    if not clear and not unclear:
        return []
    line = (f"The most similar pair's lead over the runner-up (paired {level} interval of the difference, same "
            f"sentence blocks) excludes 0 under {len(clear)} of {len(clear) + len(unclear)} measures")
    line += f": {'; '.join(clear)}." if clear else "."
    if unclear:
        line += f" Not significant under {'; '.join(unclear)}: there the ranking of the top two pairs is not settled."
    return [line]


def covered_stats(measures: Sequence[str], compute: Callable[[str], ModelStats]) -> dict[str, ModelStats]:
    """The model-level statistics of each measure that has any.

    Parameters
    ----------
    measures : sequence of str
        The measures.
    compute : callable
        Measure -> its ModelStats.

    Returns
    -------
    dict of str to ModelStats
        Only measures with at least one directed value's statistics.
    """
    out = {}
    for measure in measures:
        found = compute(measure)
        if found.directed:
            out[measure] = found
    return out
