"""reprsim.report: figures (PNG + SVG) and one self-contained HTML page for a results table."""

from reprsim.report.html import parse_finetuned, write_report

__all__ = ["parse_finetuned", "write_report"]
