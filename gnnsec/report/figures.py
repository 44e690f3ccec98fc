"""Ablation figures from tracked runs: a metric against the factor a sub-sweep varies (GCleaner Fig. 6-12).

One PNG per ablation sub-sweep (runs tagged with ``gnnsec.factor``): a column per dataset, rows ASR and ACC
in percent, a line per (attack, defense) with mean ± std over seeds; dashed lines are the backdoored model
before any defense. The numbers behind each figure are written as CSV beside it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pandas as pd

from gnnsec.paths import slug
from gnnsec.report.tables import ATTACK_LABELS, KEYS

log = logging.getLogger(__name__)


def varying_params(df: pd.DataFrame) -> list[str]:
    """Param columns whose value differs between the runs of ``df`` (seeds excluded)."""
    out = []
    for col in [c for c in df.columns if c.startswith("params.")]:
        if col.endswith(".seed") or col.endswith("split_seed"):
            continue
        if df[col].map(repr).nunique() > 1:
            out.append(col)
    return out


def ablation_summary(df: pd.DataFrame, factor: str | None) -> pd.DataFrame:
    """Mean/std over seeds of before/after ASR and ACC per setting of the varying params."""
    keys = varying_params(df)
    if factor and f"params.{factor}" not in keys and f"params.{factor}" in df:
        keys.append(f"params.{factor}")
    if not keys:
        keys = [KEYS["dataset"]]
    metrics = ["backdoor_asr", "backdoor_acc", "defended_asr", "defended_acc"]
    present = [m for m in metrics if f"metrics.{m}" in df]
    view = df[keys + [f"metrics.{m}" for m in present] + [KEYS["seed"]]].copy()
    for k in keys:
        view[k] = view[k].map(
            lambda v: v if isinstance(v, int | float | str | bool) or v is None else repr(v)
        )
    grouped = view.groupby(keys, dropna=False)
    out = grouped[[f"metrics.{m}" for m in present]].agg(["mean", "std"])
    out.columns = [f"{m.removeprefix('metrics.')}_{s}" for m, s in out.columns]
    out = out * 100
    out["seeds"] = grouped[KEYS["seed"]].nunique()
    out = out.reset_index()
    out.columns = [c.removeprefix("params.") for c in out.columns]
    return out


def _atomic_savefig(fig: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=path.suffix)
    os.close(fd)
    fig.savefig(tmp, dpi=120, bbox_inches="tight")  # type: ignore[attr-defined]
    os.replace(tmp, path)


def atomic_write_csv(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    os.close(fd)
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def _sort_key(v: object) -> tuple[int, object]:
    return (0, float(v)) if isinstance(v, int | float) and not isinstance(v, bool) else (1, str(v))


def ablation_figure(df: pd.DataFrame, subsweep: str, factor: str, path: Path) -> Path | None:
    """Plot one ablation sub-sweep; return the PNG path (None when there is nothing to plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    col = f"params.{factor}"
    if col not in df or df.empty:
        return None
    df = df.copy()
    df["_x"] = df[col].map(lambda v: v if isinstance(v, int | float | str) else repr(v))
    xs = sorted(df["_x"].unique(), key=_sort_key)
    numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs)
    pos = {x: (float(x) if numeric else i) for i, x in enumerate(xs)}
    datasets = sorted(df[KEYS["dataset"]].unique())
    fig, axes = plt.subplots(2, len(datasets), figsize=(4.2 * len(datasets), 6.4), squeeze=False)
    for j, dataset in enumerate(datasets):
        part = df[df[KEYS["dataset"]] == dataset]
        for row, metric in enumerate(("asr", "acc")):
            ax = axes[row][j]
            for attack, agroup in part.groupby(KEYS["attack"], dropna=False):
                label_attack = ATTACK_LABELS.get(attack, attack)
                before = agroup.drop_duplicates(subset=["_x", KEYS["seed"]])
                _line(ax, before, f"metrics.backdoor_{metric}", pos, f"{label_attack} / none", "--")
                if KEYS["defense"] in agroup:
                    for defense, dgroup in agroup.groupby(KEYS["defense"], dropna=True):
                        _line(
                            ax, dgroup, f"metrics.defended_{metric}", pos, f"{label_attack} / {defense}", "-"
                        )
            ax.set_title(f"{dataset}")
            ax.set_xlabel(factor.rsplit(".", 1)[-1])
            ax.set_ylabel(f"{metric.upper()} (%)")
            ax.set_ylim(-2, 102)
            if not numeric:
                ax.set_xticks(range(len(xs)), [str(x) for x in xs], rotation=30)
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.suptitle(f"{subsweep}: ASR / ACC vs {factor}")
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    _atomic_savefig(fig, path)
    plt.close(fig)
    return path


def _line(ax: object, df: pd.DataFrame, metric: str, pos: dict, label: str, style: str) -> None:
    if metric not in df or df[metric].isna().all():
        return
    g = df.groupby("_x")[metric].agg(["mean", "std"]).reset_index()
    g["p"] = g["_x"].map(pos)
    g = g.sort_values("p")
    ax.errorbar(  # type: ignore[attr-defined]
        g["p"], 100 * g["mean"], yerr=100 * g["std"].fillna(0), fmt=style + "o", ms=3, capsize=2, label=label
    )


def ablation_figures(runs: pd.DataFrame, out_dir: Path | str) -> list[Path]:
    """A figure (and CSV) per ablation sub-sweep present in ``runs``; a CSV for factor-less ones."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    if runs.empty or "subsweep" not in runs:
        return written
    for subsweep, df in runs.groupby("subsweep"):
        if not subsweep or subsweep == "main":
            continue
        factor = df["factor"].dropna().iloc[0] if df["factor"].notna().any() else None
        stem = f"ablation_{slug(subsweep)}"  # a name read from MLflow becomes a file name: keep it inside
        atomic_write_csv(ablation_summary(df, factor), out_dir / f"{stem}.csv")
        written.append(out_dir / f"{stem}.csv")
        path = out_dir / f"{stem}.png"
        png = ablation_figure(df, subsweep, factor, path) if factor else settings_figure(df, subsweep, path)
        if png:
            written.append(png)
    return written


def settings_figure(df: pd.DataFrame, subsweep: str, path: Path) -> Path | None:
    """Bars of ASR/ACC after the defense per setting, for sub-sweeps of cases (e.g. Table 9's loss terms)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = ablation_summary(df, None)
    metrics = [m for m in ("defended_asr_mean", "defended_acc_mean") if m in summary]
    keys = [c for c in summary.columns if not c.endswith(("_mean", "_std")) and c != "seeds"]
    if summary.empty or not metrics or not keys:
        return None
    labels = [
        "\n".join(f"{k.rsplit('.', 1)[-1]}={summary.iloc[i][k]}" for k in keys) for i in range(len(summary))
    ]
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(5.0, 2.2 * len(labels)) * len(metrics), 4.6))
    axes = [axes] if len(metrics) == 1 else list(axes)
    for ax, metric in zip(axes, metrics):
        std = summary.get(metric.replace("_mean", "_std"))
        ax.bar(range(len(labels)), summary[metric], yerr=None if std is None else std.fillna(0), capsize=3)
        before = metric.replace("defended", "backdoor")
        if before in summary:
            ax.axhline(float(summary[before].mean()), ls="--", c="gray", label="before defense")
            ax.legend(fontsize=8)
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_ylabel(metric.removesuffix("_mean").replace("defended_", "").upper() + " after (%)")
        ax.set_ylim(0, 102)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{subsweep}: ASR / ACC after the defense per setting")
    fig.tight_layout()
    _atomic_savefig(fig, path)
    plt.close(fig)
    return path
