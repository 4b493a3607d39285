"""Reports of a results table: one self-contained HTML page, figures (PNG + SVG) and tidy CSVs.

`write_report` writes the report directory; `parse_finetuned` parses the CLI form of a fine-tuning
comparison. For notebooks, `heatmap`, `pair_heatmap` and `dendrogram` draw one figure of a results table
into a matplotlib Axes (`reprsim.report.notebook`). The figure builders are in `reprsim.report.figures`.
"""

from reprsim.report.html import parse_finetuned, write_report
from reprsim.report.notebook import dendrogram, heatmap, pair_heatmap

__all__ = ["dendrogram", "heatmap", "pair_heatmap", "parse_finetuned", "write_report"]
