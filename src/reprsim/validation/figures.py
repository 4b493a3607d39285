"""Figures of the validation suite, drawn with matplotlib's object API (no pyplot global state)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def plot_identification(accuracy: pd.DataFrame, path: str | Path) -> Path:
    """Plot layer-identification accuracy as grouped bars, per measure and setting.

    Kornblith et al.'s values are drawn as black diamonds and each setting's chance level as a dashed line
    in its colour.

    Parameters
    ----------
    accuracy : pandas.DataFrame
        The identification accuracy table (`ValidationResult.accuracy`: columns ``measure``, ``setting``,
        ``accuracy`` in percent, ``chance``, ``paper_accuracy``).
    path : str or Path
        The PNG file to write (120 dpi).

    Returns
    -------
    Path
        `path`.
    """
    measures = list(dict.fromkeys(accuracy["measure"]))
    settings = list(dict.fromkeys(accuracy["setting"]))
    fig = Figure(figsize=(max(8.0, 0.6 * len(measures) + 2), 4.5), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(measures))
    width = 0.8 / len(settings)
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for i, setting in enumerate(settings):
        part = accuracy[accuracy["setting"] == setting].set_index("measure").reindex(measures)
        colour = colours[i % len(colours)]
        ax.bar(x + (i - (len(settings) - 1) / 2) * width, part["accuracy"], width, label=setting, color=colour)
        ax.axhline(float(part["chance"].dropna().iloc[0]), color=colour, linestyle="--", linewidth=1)
    paper = accuracy.drop_duplicates("measure").set_index("measure").reindex(measures)["paper_accuracy"]
    ax.scatter(x, paper, marker="D", color="black", zorder=3, label="Kornblith et al. 2019 (Table 2)")
    ax.set_xticks(x, measures, rotation=45, ha="right")
    ax.set_ylabel("corresponding layer identified (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Layer identification across seeds (dashed: chance)")
    ax.legend(fontsize="small", loc="upper left")
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def plot_sensitivity(curves: pd.DataFrame, noise_floor: pd.DataFrame, path: str | Path) -> Path:
    """Plot the component-deletion curves: one panel per measure.

    Each panel shows the mean over layers of the similarity to the intact layer against the fraction of
    components deleted, per setting (colour) and deletion order (solid: top first, dotted: bottom first);
    dashed lines mark each setting's seed floor (mean over layers).

    Parameters
    ----------
    curves : pandas.DataFrame
        The deletion curves (`ValidationResult.curves`: columns ``measure``, ``setting``, ``order``,
        ``layer``, ``k``, ``value``).
    noise_floor : pandas.DataFrame
        The seed-to-seed floor (`ValidationResult.noise_floor`: columns ``setting``, ``measure``, ``mean``).
    path : str or Path
        The PNG file to write (110 dpi).

    Returns
    -------
    Path
        `path`.
    """
    measures = list(dict.fromkeys(curves["measure"]))
    settings = list(dict.fromkeys(curves["setting"]))
    cols = 4
    rows = math.ceil(len(measures) / cols)
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    grid = np.linspace(0.0, 1.0, 101)
    for ax, measure in zip(axes.flat, measures, strict=False):
        part = curves[curves["measure"] == measure]
        for i, setting in enumerate(settings):
            colour = colours[i % len(colours)]
            for order, style in (("top", "-"), ("bottom", ":")):
                line = part[(part["setting"] == setting) & (part["order"] == order)]
                if len(line):
                    ax.plot(grid, _mean_curve(line, grid), style, color=colour, label=f"{setting}, {order} first")
            floor = noise_floor[(noise_floor["setting"] == setting) & (noise_floor["measure"] == measure)]
            if len(floor):
                ax.axhline(float(floor["mean"].mean()), color=colour, linestyle="--", linewidth=0.8)
        ax.set_title(measure, fontsize="medium")
        ax.set_xlabel("fraction of components deleted", fontsize="small")
    for ax in list(axes.flat)[len(measures) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize="small")
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def _mean_curve(curves: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    """Average value vs fraction deleted over layers, each layer interpolated onto `grid` first.

    Layers differ in rank (dead units), so their k grids differ; interpolating before averaging keeps
    one layer's jump from appearing as a zig-zag in the mean.
    """
    per_layer = []
    for _, layer in curves.groupby("layer"):
        layer = layer.sort_values("k")
        fraction = layer["k"].to_numpy() / max(int(layer["k"].max()), 1)
        per_layer.append(np.interp(grid, fraction, layer["value"].to_numpy()))
    return np.mean(per_layer, axis=0)
