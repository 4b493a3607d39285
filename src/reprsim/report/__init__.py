"""Reports of a results table: figures (PNG + SVG), tidy CSVs and one self-contained HTML page.

`write_report` writes the report directory; `parse_finetuned` parses the CLI form of a fine-tuning
comparison. The figure functions are in `reprsim.report.figures`.
"""

from reprsim.report.html import parse_finetuned, write_report

__all__ = ["parse_finetuned", "write_report"]
