"""`FigureSaver`: where the report's figures go, each under a unique file stem, as PNG + SVG."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure
from tqdm import tqdm

from reprsim.report.style import FigureFiles, slug


@dataclass
class FigureSaver:
    """Save figures under one directory with unique file stems, advancing a progress bar.

    Attributes
    ----------
    directory : Path
        Where the PNG and SVG files go (created on the first save).
    progress : tqdm
        A progress bar advanced by one per figure saved.
    used : set of str
        The file stems taken so far; a repeated stem gets a ``-2``, ``-3``, ... suffix.
    saved : dict of str to FigureFiles
        The files of each figure saved, by the stem asked for.
    """

    directory: Path
    progress: tqdm
    used: set[str] = field(default_factory=set)
    saved: dict[str, FigureFiles] = field(default_factory=dict)

    def save(self, build: Callable[[], Figure], stem: str, line_art: bool = False) -> FigureFiles:
        """Build a figure and save it as PNG + SVG.

        Parameters
        ----------
        build : callable
            Takes no argument and returns the `matplotlib.figure.Figure` to save.
        stem : str
            The file name stem; it is made filename-safe and unique within the directory.
        line_art : bool, default False
            The figure has lines and text but no colour gradients (dendrograms, curves): its PNG is stored with
            a small palette, which the page inlines at a third of the size.

        Returns
        -------
        FigureFiles
            The files written.
        """
        from reprsim.report.style import quantize_png, save_figure

        candidate, k = slug(stem), 2
        base = candidate
        while candidate in self.used:
            candidate, k = f"{base}-{k}", k + 1
        self.used.add(candidate)
        files = save_figure(build(), self.directory, candidate)
        if line_art:
            quantize_png(files.png)
        self.saved[stem] = files
        self.progress.update(1)
        return files
