"""Every table and figure of the GCleaner and Forget-and-Explain papers from tracked MLflow runs.

``build_report(experiment)`` reads the experiment's runs (any tracking URI, never trial outputs directly)
and writes each table as CSV + Markdown beside the paper's numbers, each figure as PNG + PDF with the CSV
behind it, the list of what could not be rendered (and why), and one self-contained ``report.html``.
``catalog`` names every item, the sub-sweep that fills it and the params/metrics it reads.
"""

from gnnsec.report.build import build_report
from gnnsec.report.runs import load_runs
from gnnsec.report.tables import table3

__all__ = ["build_report", "load_runs", "table3"]
