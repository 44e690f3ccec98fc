"""``build_report``: everything the report writes for one sweep, from its MLflow runs."""

from __future__ import annotations

import logging
from pathlib import Path

from gnnsec.report.figures import ablation_figures, atomic_write_csv
from gnnsec.report.runs import latest_experiment, load_runs
from gnnsec.report.tables import table3, table3_markdown

log = logging.getLogger(__name__)


def build_report(
    experiment: str | None = None,
    uri: str | None = None,
    out_dir: str | Path | None = None,
    reference_dir: str | Path | None = None,
) -> dict[str, list[Path]]:
    """Write Table 3 (CSV + Markdown, beside the paper's) and the ablation figures; return the paths."""
    from gnnsec.cache import atomic_write_text
    from gnnsec.paths import slug
    from gnnsec.tracking import default_run_dir, tracking_uri

    uri = uri or tracking_uri()
    experiment = experiment or latest_experiment(uri)
    if experiment is None:
        log.warning("no gnnsec experiment in %s", uri)
        return {"tables": [], "figures": []}
    sweep = slug(experiment.split("/", 1)[-1])  # read back from MLflow: never a path outside the run dir
    out = Path(out_dir) if out_dir else default_run_dir() / "report" / sweep
    runs = load_runs(experiment, uri)
    log.info("report of %s: %d finished runs", experiment, len(runs))
    tables: list[Path] = []
    t3 = table3(runs, reference_dir)
    if not t3.empty:
        atomic_write_csv(t3, out / "table3.csv")
        atomic_write_text(
            out / "table3.md", f"# {experiment}: GCleaner Table 3 layout\n\n" + table3_markdown(t3)
        )
        tables += [out / "table3.csv", out / "table3.md"]
    written = ablation_figures(runs, out)
    tables += [p for p in written if p.suffix == ".csv"]
    return {"tables": tables, "figures": [p for p in written if p.suffix == ".png"]}
