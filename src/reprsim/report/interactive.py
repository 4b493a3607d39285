"""The page's interactive figures: plotly.js inlined once, the heatmap data as JSON, and the script using both.

Every measure's all-layers matrix travels once, as JSON (values to 6 significant digits, NaN as null); the
script draws each measure's heatmap and its pair grid from it, on the measure's one colour scale, when they
scroll into view, and redraws them when the model filter changes. Hovering a cell shows both layers and the
value. Nothing is fetched: the page works from a file, offline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from reprsim.analysis.aggregate import relative_depth
from reprsim.results import LayerId


def plotly_js() -> str:
    """The minified plotly.js bundle shipped with the pinned plotly package.

    Returns
    -------
    str
        The script's source.
    """
    from plotly.offline import get_plotlyjs  # imported late: only a report needs it

    return str(get_plotlyjs())


def _rounded(values: np.ndarray) -> list[list[float | None]]:
    """A matrix as nested lists of 6-significant-digit floats, NaN as None (null in JSON)."""
    return [[None if not np.isfinite(v) else float(f"{v:.6g}") for v in row] for row in values.tolist()]


def measure_payload(
    measure: str,
    labels: Sequence[LayerId],
    values: np.ndarray,
    larger_is_similar: bool,
    symmetric: bool,
    value_range: tuple[float, float],
    stats: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON record the script draws one measure's figures from.

    Parameters
    ----------
    measure : str
        The measure's name.
    labels : sequence of LayerId
        Rows and columns of `values`.
    values : numpy.ndarray
        The all-layers matrix, ``values[i, j] = sim(labels[i] -> labels[j])``, NaN where not computed.
    larger_is_similar : bool
        False for distances.
    symmetric : bool
        Whether the measure is symmetric.
    value_range : tuple of float
        The measure's colour scale.
    stats : mapping, optional
        The cells' statistics, when the table has them: ``"low"``, ``"high"``, ``"p"`` (matrices like
        `values`, NaN where missing), ``"marks"`` (boolean matrix: not above the null) and ``"level"`` (e.g.
        ``"95%"``).

    Returns
    -------
    dict
        ``{"measure", "labels": [[model, layer, depth], ...], "z", "larger", "symmetric", "range"}``, plus
        ``"stats": {"lo", "hi", "p", "marks": [[i, j], ...], "level"}`` with `stats`.
    """
    depth: dict[LayerId, float] = {}
    for model in dict.fromkeys(label.model for label in labels):
        own = [label for label in labels if label.model == model]
        for label, d in zip(own, relative_depth([label.layer for label in own]), strict=True):
            depth[label] = round(float(d), 3)
    payload: dict[str, Any] = {
        "measure": measure,
        "labels": [[label.model, label.layer, depth[label]] for label in labels],
        "z": _rounded(np.asarray(values, dtype=np.float64)),
        "larger": bool(larger_is_similar),
        "symmetric": bool(symmetric),
        "range": [float(f"{value_range[0]:.6g}"), float(f"{value_range[1]:.6g}")],
    }
    if stats is not None:
        marks = np.argwhere(np.asarray(stats["marks"], dtype=bool))
        payload["stats"] = {
            "lo": _rounded(np.asarray(stats["low"], dtype=np.float64)),
            "hi": _rounded(np.asarray(stats["high"], dtype=np.float64)),
            "p": _rounded(np.asarray(stats["p"], dtype=np.float64)),
            "marks": [[int(i), int(j)] for i, j in marks],
            "level": str(stats["level"]),
        }
    return payload


def data_script(models: Sequence[str], payloads: Mapping[str, Mapping[str, Any]]) -> str:
    """The page's data as a JSON script element (not executed; read by the page's script).

    Parameters
    ----------
    models : sequence of str
        Every model, in table order (the model filter's entries).
    payloads : mapping of str to dict
        Measure -> `measure_payload`.

    Returns
    -------
    str
        ``<script type="application/json" id="rs-data">...</script>``.
    """
    text = json.dumps({"models": list(models), "measures": dict(payloads)}, separators=(",", ":"), allow_nan=False)
    # "</" cannot end the element early once escaped; JSON.parse reads "<\/" as "</".
    safe = text.replace("</", "<\\/")
    return f'<script type="application/json" id="rs-data">{safe}</script>'


def plot_div(measure: str, kind: str) -> str:
    """A placeholder the script fills with one interactive figure.

    Parameters
    ----------
    measure : str
        The measure whose data it draws.
    kind : {"layers", "pairs"}
        The all-layers heatmap or the grid of model pairs.

    Returns
    -------
    str
        The ``<div>`` element.
    """
    from reprsim.report.page import esc

    return (f'<div class="plot rs-plot" data-measure="{esc(measure)}" data-kind="{esc(kind)}" '
            f'role="img" aria-label="{esc(measure)} {esc(kind)} heatmap"></div>')


def page_scripts() -> str:
    """The plotly bundle and the page's own script, each inlined once.

    Returns
    -------
    str
        Two ``<script>`` elements.
    """
    return f"<script>{plotly_js()}</script><script>{APP_JS}</script>"


APP_JS = r"""
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('rs-data').textContent);
  var state = { models: new Set(data.models), annotate: false, measure: '' };
  var VIRIDIS = 'Viridis';
  var rendered = new Set();

  function name(label) { return label[0] + ' L' + label[1]; }
  function chosen(m) {
    var idx = [];
    m.labels.forEach(function (label, i) { if (state.models.has(label[0])) idx.push(i); });
    return idx;
  }
  function cellName(m) {
    var what = m.larger ? 'sim' : 'distance';
    return m.symmetric ? what + '(row, column)' : what + '(row → column)';
  }
  function colorAxis(m, narrow) {
    var kind = m.larger ? 'similarity' : 'distance (lower = more similar)';
    return {
      colorscale: VIRIDIS, reversescale: !m.larger, cmin: m.range[0], cmax: m.range[1],
      colorbar: {
        title: { text: m.measure + ' ' + kind + '<br>one scale for every ' + m.measure + ' figure: ' +
                 m.range[0].toPrecision(3) + ' to ' + m.range[1].toPrecision(3), side: narrow ? 'top' : 'right',
                 font: { size: 11 } },
        orientation: narrow ? 'h' : 'v', thickness: 12, tickfont: { size: 11 },
        y: narrow ? -0.18 : 0.5, yanchor: narrow ? 'top' : 'middle', len: narrow ? 1 : 0.9
      }
    };
  }
  function spans(idx, labels) {
    var out = [];
    idx.forEach(function (i, k) {
      var model = labels[i][0];
      if (out.length && out[out.length - 1].model === model) out[out.length - 1].stop = k + 1;
      else out.push({ model: model, start: k, stop: k + 1 });
    });
    return out;
  }
  function ticks(names, labels, idx, pixels) {
    var step = Math.max(1, Math.ceil(names.length * 13 / Math.max(pixels, 1)));
    var vals = [], text = [];
    names.forEach(function (n, k) { if (k % step === 0) { vals.push(n); text.push(String(labels[idx[k]][1])); } });
    return { tickvals: vals, ticktext: text, tickfont: { size: 10 }, tickangle: 0, automargin: true };
  }
  function statText(st, i, j) {
    if (!st) return '';
    var parts = [], lo = st.lo[i][j], hi = st.hi[i][j], p = st.p[i][j];
    if (lo !== null && hi !== null) parts.push(st.level + ' interval [' + lo.toFixed(3) + ', ' + hi.toFixed(3) + ']');
    if (p !== null) parts.push('p = ' + p.toPrecision(2));
    if (st.marked[i + ',' + j]) parts.push('× not above its null');
    return parts.length ? '<br>' + parts.join('<br>') : '';
  }
  function markTrace(st, rows, cols, xOf, yOf, size, axes) {
    var x = [], y = [], where = {}, k;
    for (k = 0; k < rows.length; k++) where['r' + rows[k]] = k;
    for (k = 0; k < cols.length; k++) where['c' + cols[k]] = k;
    st.marks.forEach(function (c) {
      if (where['r' + c[0]] !== undefined && where['c' + c[1]] !== undefined) { x.push(xOf(c[1])); y.push(yOf(c[0])); }
    });
    var trace = { type: 'scatter', mode: 'markers', x: x, y: y, hoverinfo: 'skip', showlegend: false,
                  name: 'not above its null',
                  marker: { symbol: 'x-thin', size: size, line: { width: 2, color: '#d62728' } } };
    if (axes) { trace.xaxis = axes[0]; trace.yaxis = axes[1]; }
    return trace;
  }
  function prepareStats(m) {
    if (m.stats && !m.stats.marked) {
      m.stats.marked = {};
      m.stats.marks.forEach(function (c) { m.stats.marked[c[0] + ',' + c[1]] = true; });
    }
    return m.stats;
  }
  function heatmap(div, m) {
    var idx = chosen(m);
    var width = Math.max(div.clientWidth, 280), narrow = width < 600;
    if (idx.length === 0) { div.textContent = 'No model chosen.'; return; }
    var names = idx.map(function (i) {
      return name(m.labels[i]) + ' (depth ' + m.labels[i][2].toFixed(2) + ')';
    });
    var z = idx.map(function (i) { return idx.map(function (j) { return m.z[i][j]; }); });
    var plotSize = Math.min(width - (narrow ? 50 : 190), 820);
    var cell = plotSize / idx.length;
    var trace = {
      type: 'heatmap', x: names, y: names, z: z, coloraxis: 'coloraxis', hoverongaps: false,
      hovertemplate: 'row: %{y}<br>column: %{x}<br>' + cellName(m) + ' = %{z:.4f}<extra>' + m.measure +
        '</extra>'
    };
    if (state.annotate && cell >= 24) { trace.texttemplate = '%{z:.2f}'; trace.textfont = { size: 9 }; }
    var st = prepareStats(m), traces = [trace];
    if (st) {
      trace.customdata = idx.map(function (i) { return idx.map(function (j) { return statText(st, i, j); }); });
      trace.hovertemplate = trace.hovertemplate.replace('<extra>', '%{customdata}<extra>');
      traces.push(markTrace(st, idx, idx, function (j) { return names[idx.indexOf(j)]; },
                            function (i) { return names[idx.indexOf(i)]; }, Math.max(4, Math.min(14, cell * 0.6))));
    }
    var shapes = [], annotations = [];
    spans(idx, m.labels).forEach(function (s, k) {
      if (k > 0) {
        var at = s.start - 0.5, line = { color: 'white', width: 2 };
        shapes.push({ type: 'line', xref: 'x', yref: 'paper', x0: at, x1: at, y0: 0, y1: 1, line: line });
        shapes.push({ type: 'line', xref: 'paper', yref: 'y', y0: at, y1: at, x0: 0, x1: 1, line: line });
      }
      annotations.push({ x: (s.start + s.stop - 1) / 2, y: 1, xref: 'x', yref: 'paper', yanchor: 'bottom',
                         text: s.model, showarrow: false, font: { size: 11 }, textangle: narrow ? -30 : 0 });
    });
    var layout = {
      height: plotSize + (narrow ? 170 : 110), margin: { l: 10, r: 10, t: 60, b: 40 },
      xaxis: Object.assign(ticks(names, m.labels, idx, plotSize),
                           { title: { text: 'layer (column)', font: { size: 11 } }, constrain: 'domain',
                             range: [-0.5, idx.length - 0.5] }),
      yaxis: Object.assign(ticks(names, m.labels, idx, plotSize),
                           { title: { text: 'layer (row)', font: { size: 11 } }, range: [idx.length - 0.5, -0.5],
                             scaleanchor: 'x', constrain: 'domain' }),
      coloraxis: colorAxis(m, narrow), shapes: shapes, annotations: annotations, font: { size: 11 },
      plot_bgcolor: '#d9d9d9', hoverlabel: { font: { size: 12 } }
    };
    Plotly.react(div, traces, layout, { displaylogo: false, responsive: false });
  }
  function pairGrid(div, m) {
    var idx = chosen(m);
    var models = [];
    idx.forEach(function (i) { if (models.indexOf(m.labels[i][0]) < 0) models.push(m.labels[i][0]); });
    var pairs = [];
    models.forEach(function (a, i) { models.forEach(function (b, j) {
      if (i !== j && (!m.symmetric || i < j)) pairs.push([a, b]); }); });
    if (!pairs.length) { div.textContent = 'Choose at least two models to see model pairs.'; return; }
    var width = Math.max(div.clientWidth, 280), narrow = width < 600;
    var cols = narrow ? 1 : Math.min(pairs.length, Math.ceil(Math.sqrt(pairs.length)));
    var rows = Math.ceil(pairs.length / cols);
    var panel = Math.min(360, (width - 60) / cols);
    var traces = [], annotations = [], layout = {
      grid: { rows: rows, columns: cols, pattern: 'independent', xgap: 0.25, ygap: 0.3 },
      height: rows * (panel + 40) + (narrow ? 150 : 80), margin: { l: 40, r: 10, t: 40, b: 40 },
      coloraxis: colorAxis(m, narrow), font: { size: 11 }, plot_bgcolor: '#d9d9d9',
      hoverlabel: { font: { size: 12 } }
    };
    pairs.forEach(function (pair, k) {
      var ia = idx.filter(function (i) { return m.labels[i][0] === pair[0]; });
      var ib = idx.filter(function (i) { return m.labels[i][0] === pair[1]; });
      var suffix = k === 0 ? '' : String(k + 1);
      var arrow = m.symmetric ? ' vs ' : ' → ';
      traces.push({
        type: 'heatmap', xaxis: 'x' + suffix, yaxis: 'y' + suffix, coloraxis: 'coloraxis', hoverongaps: false,
        x: ib.map(function (j) { return m.labels[j][1]; }), y: ia.map(function (i) { return m.labels[i][1]; }),
        z: ia.map(function (i) { return ib.map(function (j) { return m.z[i][j]; }); }),
        hovertemplate: pair[0] + ' L%{y} ' + arrow.trim() + ' ' + pair[1] + ' L%{x}<br>' + m.measure +
          ' = %{z:.4f}<extra></extra>'
      });
      if (state.annotate && panel / Math.max(ia.length, ib.length) >= 24) {
        traces[traces.length - 1].texttemplate = '%{z:.2f}'; traces[traces.length - 1].textfont = { size: 9 };
      }
      var st = prepareStats(m);
      if (st) {
        var cellTrace = traces[traces.length - 1];
        cellTrace.customdata = ia.map(function (i) { return ib.map(function (j) { return statText(st, i, j); }); });
        cellTrace.hovertemplate = cellTrace.hovertemplate.replace('<extra>', '%{customdata}<extra>');
        var markSize = Math.max(4, Math.min(12, 0.6 * panel / Math.max(ia.length, ib.length)));
        traces.push(markTrace(st, ia, ib, function (j) { return m.labels[j][1]; },
                              function (i) { return m.labels[i][1]; }, markSize, ['x' + suffix, 'y' + suffix]));
      }
      var shown = function (rows) {
        var step = Math.max(1, Math.ceil(rows.length * 13 / panel));
        return rows.filter(function (_, q) { return q % step === 0; }).map(function (i) { return m.labels[i][1]; });
      };
      layout['xaxis' + suffix] = { type: 'category', tickfont: { size: 10 }, tickmode: 'array', tickvals: shown(ib),
                                   title: { text: 'layer of ' + pair[1], font: { size: 10 } } };
      layout['yaxis' + suffix] = { type: 'category', autorange: 'reversed', tickfont: { size: 10 }, tickmode: 'array',
                                   tickvals: shown(ia), title: { text: 'layer of ' + pair[0], font: { size: 10 } } };
      annotations.push({ xref: 'x' + suffix + ' domain', yref: 'y' + suffix + ' domain', x: 0.5, y: 1,
                         yanchor: 'bottom', text: pair[0] + arrow + pair[1], showarrow: false, font: { size: 11 } });
    });
    layout.annotations = annotations;
    Plotly.react(div, traces, layout, { displaylogo: false, responsive: false });
  }
  function render(div) {
    var m = data.measures[div.getAttribute('data-measure')];
    if (!m || div.offsetParent === null) return;
    if (div.getAttribute('data-kind') === 'pairs') pairGrid(div, m); else heatmap(div, m);
    rendered.add(div);
    div.setAttribute('data-rendered', 'yes');
  }
  function plots() { return Array.prototype.slice.call(document.querySelectorAll('.rs-plot')); }
  function redraw() { rendered.forEach(function (div) { render(div); }); }
  var observer = 'IntersectionObserver' in window ? new IntersectionObserver(function (entries) {
    entries.forEach(function (e) { if (e.isIntersecting && !rendered.has(e.target)) render(e.target); });
  }, { rootMargin: '300px' }) : null;
  plots().forEach(function (div) { if (observer) observer.observe(div); else render(div); });

  function applyMeasure() {
    document.querySelectorAll('.rs-measure').forEach(function (s) {
      s.style.display = !state.measure || s.getAttribute('data-measure') === state.measure ? '' : 'none';
    });
    if (state.measure) {
      var section = document.querySelector('.rs-measure[data-measure="' + CSS.escape(state.measure) + '"]');
      if (section) {
        section.querySelectorAll('.rs-plot').forEach(function (div) { render(div); });
        section.scrollIntoView();
      }
    }
  }
  function applyModels() {
    document.querySelectorAll('[data-pair]').forEach(function (cell) {
      var both = cell.getAttribute('data-pair').split('\u0001');
      cell.style.display = state.models.has(both[0]) && state.models.has(both[1]) ? '' : 'none';
    });
    redraw();
  }
  var select = document.getElementById('rs-measure');
  if (select) select.addEventListener('change', function () { state.measure = select.value; applyMeasure(); });
  document.querySelectorAll('input[data-model]').forEach(function (box) {
    box.addEventListener('change', function () {
      if (box.checked) state.models.add(box.getAttribute('data-model'));
      else state.models.delete(box.getAttribute('data-model'));
      applyModels();
    });
  });
  var annotate = document.getElementById('rs-annotate');
  if (annotate) annotate.addEventListener('change', function () { state.annotate = annotate.checked; redraw(); });
  window.addEventListener('hashchange', function () {
    var target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target && target.classList.contains('rs-measure') && target.style.display === 'none' && select) {
      select.value = ''; state.measure = ''; applyMeasure(); target.scrollIntoView();
    }
  });
  var resizing = null;
  window.addEventListener('resize', function () { clearTimeout(resizing); resizing = setTimeout(redraw, 200); });
  window.addEventListener('beforeprint', function () { plots().forEach(render); });

  function tableText(table) {
    return Array.prototype.map.call(table.querySelectorAll('tr'), function (tr) {
      return Array.prototype.filter.call(tr.children, function (c) { return c.style.display !== 'none'; })
        .map(function (c) { return c.textContent.trim(); }).join('\t');
    }).join('\n');
  }
  document.querySelectorAll('button[data-copy-table]').forEach(function (button) {
    button.addEventListener('click', function () {
      var table = button.previousElementSibling.querySelector('table');
      var text = tableText(table);
      var label = button.textContent;
      var done = function () {
        button.textContent = 'Copied';
        setTimeout(function () { button.textContent = label; }, 1500);
      };
      var fallback = function () {
        var area = document.createElement('textarea');
        area.value = text; document.body.appendChild(area); area.select();
        try { document.execCommand('copy'); done(); } catch (e) { button.textContent = 'Select the table to copy it'; }
        document.body.removeChild(area);
      };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, fallback);
      else fallback();
    });
  });
  window.reprsim = { data: data, state: state, render: render, redraw: redraw };
})();
"""
