"""``build_report``: every table and figure of both papers that a sweep's runs can fill, and ``report.html``.

Reads the experiment's runs (any tracking URI), renders each item of ``catalog.ITEMS`` whose sub-sweep has
runs, and lists each one that cannot be rendered once, with its reason ("no runs of sub-sweep X"). Output,
under ``<run dir>/report/<sweep>/`` unless told otherwise: ``<item>.csv`` + ``<item>.md`` per table,
``<item>.png``/``.pdf`` + ``<item>.csv`` (the data behind it) per figure, ``differences.csv``,
``skipped.csv`` and the self-contained ``report.html``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from gnnsec.errors import ConfigError
from gnnsec.paths import slug
from gnnsec.provenance import package_versions
from gnnsec.report.catalog import ITEMS
from gnnsec.report.figures import FACTOR_FIGURES, FigureResult, epochs_figure, factor_figure, fig5
from gnnsec.report.html import render_html
from gnnsec.report.runs import ArtifactReader, experiment_names, latest_experiment, load_runs, subsweep
from gnnsec.report.summary import Table, atomic_write_csv, differences, write_table
from gnnsec.report.tables import GCLEANER_TABLES, read_reference
from gnnsec.report.tables import reference_dir as default_reference_dir
from gnnsec.report.tables_unlearning import UNLEARNING_TABLES
from gnnsec.report.tsne import fig10

log = logging.getLogger(__name__)


def _figure_renderers(reader: ArtifactReader, reference: Any) -> dict[str, Callable[[pd.DataFrame], Any]]:
    out: dict[str, Callable[[pd.DataFrame], Any]] = {
        key: (lambda runs, k=key: factor_figure(runs, k, reference)) for key in FACTOR_FIGURES
    }
    out["gcleaner_fig5"] = lambda runs: fig5(runs, reference)
    out["gcleaner_fig10"] = lambda runs: fig10(runs, reader)
    out["gcleaner_unlearn_epochs"] = lambda runs: epochs_figure(runs, reader)
    return out


def save_figure(result: FigureResult, out: Path, formats: Sequence[str]) -> list[Path]:
    """The figure in each format (atomically) and the CSV of the data behind it."""
    paths = [atomic_write_csv(result.data, out / f"{result.key}.csv")]
    for fmt in formats:
        path = out / f"{result.key}.{fmt}"
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{path.name}-", suffix=f".{fmt}")
        os.close(fd)
        result.fig.savefig(tmp, dpi=110, bbox_inches="tight", format=fmt)
        os.replace(tmp, path)
        paths.append(path)
    import matplotlib.pyplot as plt

    plt.close(result.fig)
    return paths


FORMATS = ("png", "pdf", "svg")


def folder_name(experiment: str) -> str:
    """The report folder of an experiment read back from MLflow: its name after ``gnnsec/``, reduced to
    ``[A-Za-z0-9._-]`` and never ``.``/``..``, so no name can write outside ``<run dir>/report``."""
    return slug(experiment.split("/", 1)[-1])


def _reason(runs: pd.DataFrame, sub: str, what: str) -> str:
    if sub and subsweep(runs, sub).empty:
        return f"no runs of sub-sweep {sub}"
    return f"runs of sub-sweep {sub or 'any'} have no {what}"


def provenance(all_runs: pd.DataFrame, experiment: str, uri: str) -> dict[str, str]:
    """Git commit, package versions, hosts, dates, preset and trial counts, from the runs' tags."""

    def tag(name: str) -> str:
        col = f"tags.{name}"
        vals = sorted({str(v) for v in all_runs[col].dropna() if str(v)}) if col in all_runs else []
        return ", ".join(vals) or "unknown"

    counts = all_runs["status"].value_counts().to_dict() if "status" in all_runs else {}
    hosts = {
        h
        for col in ("tags.gnnsec.host", "tags.gnnsec.driver_host")
        if col in all_runs
        for h in all_runs[col].dropna()
        if h
    }
    start = pd.to_datetime(all_runs["start_time"]).min() if "start_time" in all_runs else None
    end = pd.to_datetime(all_runs["end_time"]).max() if "end_time" in all_runs else None
    packages = tag("gnnsec.packages")
    if packages == "unknown":
        packages = "at report time: " + package_versions()
    return {
        "experiment": experiment,
        "tracking store": uri,
        "sweep / preset": f"{tag('gnnsec.sweep')} / {tag('gnnsec.preset')}",
        "git commit": tag("gnnsec.git_commit"),
        "gnnsec version": tag("gnnsec.version"),
        "packages": packages,
        "python": tag("gnnsec.python"),
        "hosts": ", ".join(sorted(hosts)) or "unknown",
        "dates (UTC)": f"{start} to {end}",
        "trials": ", ".join(f"{k.lower()} {v}" for k, v in sorted(counts.items())) or "none",
        "trials finished / failed": f"{counts.get('FINISHED', 0)} / {counts.get('FAILED', 0)}",
        "report written": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def _missing_reference(item: Any, folder: str | Path | None) -> str:
    """Why a rendered table has no paper column: its reference CSV was found nowhere."""
    where = folder or default_reference_dir()
    looked = f"looked in {where}" if where else "no shared/reference beside the checkout or the data mirror"
    return f"reference CSV {item.reference} not found ({looked}); set GNNSEC_REFERENCE_DIR or --reference"


def _floor_missing(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """The clean-model floor is missing (not 0) in runs that skipped the clean model: say so, with why."""
    col = "params.attack.clean_floor"
    if runs.empty or col not in runs:
        return []
    off = int((runs[col].astype(str).str.lower() == "false").sum())
    if not off:
        return []
    why = "attack.clean_floor=false: no clean model was trained, so no floor was measured"
    return [("clean-model floor (clean_asr, clean_acc)", f"missing in {off} of {len(runs)} runs: {why}")]


def build_report(
    experiment: str | None = None,
    uri: str | None = None,
    out_dir: str | Path | None = None,
    reference_dir: str | Path | None = None,
    formats: Sequence[str] = ("png", "pdf"),
    run_dir: str | Path | None = None,
) -> dict[str, list[Path]]:
    """Write every renderable table/figure and ``report.html``; return ``{"tables", "figures", "html"}``."""
    from gnnsec.cache import atomic_write_text
    from gnnsec.tracking import default_run_dir, tracking_uri

    uri = uri or tracking_uri(run_dir)
    experiment = experiment or latest_experiment(uri)
    if experiment is None:
        log.warning("no gnnsec experiment in %s", uri)
        return {"tables": [], "figures": [], "html": []}
    known = experiment_names(uri)
    if experiment not in known:
        raise ConfigError("--experiment", experiment, sorted(known) or "none: the store has no experiment")
    bad = sorted(set(formats) - set(FORMATS))
    if bad:
        raise ConfigError("--format", ",".join(bad), FORMATS)
    formats = tuple(dict.fromkeys(["png", *formats]))  # the HTML embeds the PNG
    base = Path(run_dir).expanduser().resolve() if run_dir else default_run_dir()
    out = Path(out_dir) if out_dir else base / "report" / folder_name(experiment)
    out.mkdir(parents=True, exist_ok=True)
    all_runs = load_runs(experiment, uri, status=None)
    runs = load_runs(experiment, uri)
    log.info("report of %s: %d finished runs of %d", experiment, len(runs), len(all_runs))
    reader = ArtifactReader(uri)
    table_fns = {**GCLEANER_TABLES, **UNLEARNING_TABLES}
    figure_fns = _figure_renderers(reader, reference_dir)
    tables: list[Table] = []
    figures: list[tuple[str, str, Path]] = []
    written: dict[str, list[Path]] = {"tables": [], "figures": [], "html": []}
    skipped: list[tuple[str, str]] = []
    for item in ITEMS:
        try:
            if item.key in table_fns:
                table = table_fns[item.key](runs, reference_dir)
                if table.empty:
                    skipped.append((f"{item.paper} {item.caption}", _reason(runs, item.subsweep, item.needs)))
                    continue
                tables.append(table)
                written["tables"] += write_table(table, out)
                if item.reference and read_reference(item.reference, reference_dir) is None:
                    skipped.append(
                        (
                            f"{item.paper} {item.caption}: paper column",
                            _missing_reference(item, reference_dir),
                        )
                    )
            else:
                result = figure_fns[item.key](runs)
                if result is None:
                    skipped.append((f"{item.paper} {item.caption}", _reason(runs, item.subsweep, item.needs)))
                    continue
                paths = save_figure(result, out, formats)
                figures.append((item.key, f"{item.paper} {result.caption}", out / f"{item.key}.png"))
                written["figures"] += paths
        except Exception as exc:  # one broken item must not cost the rest of the report
            log.exception("report item %s failed", item.key)
            skipped.append((f"{item.paper} {item.caption}", f"failed: {type(exc).__name__}: {exc}"))
    skipped += _floor_missing(runs)
    for caption, reason in skipped:
        log.info("not rendered: %s (%s)", caption, reason)
    diffs = [d for d in (differences(t) for t in tables) if not d.empty]
    diff = pd.concat(diffs, ignore_index=True) if diffs else pd.DataFrame()
    atomic_write_csv(diff, out / "differences.csv")
    atomic_write_csv(pd.DataFrame(skipped, columns=["item", "reason"]), out / "skipped.csv")
    prov = provenance(all_runs, experiment, uri)
    atomic_write_text(out / "provenance.json", json.dumps(prov, indent=1))
    page = render_html(f"gnnsec report: {experiment}", prov, tables, figures, diff, skipped)
    atomic_write_text(out / "report.html", page)
    written["html"] = [out / "report.html"]
    return written
