"""Paper-style tables and figures from tracked MLflow runs (never from trial outputs directly).

``build_report(experiment)`` reads the experiment's FINISHED runs and writes, atomically, under
``<run dir>/report/<sweep>/``: Table 3 (dataset x attack, ASR/ACC before and after each defense, with seeds
and graph counts) as CSV and Markdown next to the paper's numbers, and one figure per ablation sub-sweep
(metric vs the factor it varies).
"""

from gnnsec.report.build import build_report
from gnnsec.report.figures import ablation_figures
from gnnsec.report.runs import load_runs
from gnnsec.report.tables import table3, table3_markdown

__all__ = ["ablation_figures", "build_report", "load_runs", "table3", "table3_markdown"]
