"""GCleaner figures from tracked runs: the ablations (Figures 6-9, 11, 12), per-class accuracy (Figure 5)
and ACC/ASR per unlearning epoch.

Every figure is a :class:`FigureResult`: the matplotlib figure and the long frame behind it (written as CSV
beside the PNG/PDF): ``panel, metric, line, series, x, mean, std, seeds``. Points are means over seeds with
error bars of the (ddof=0) std; ``series = paper`` rows are the paper's numbers, drawn dashed: for an ablation
the paper's Table 3 value at the paper's default of the factor (e.g. injection ratio 5%).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gnnsec.report.catalog import EPOCH_SERIES, ITEM, PAPER_DEFAULTS, PARAM
from gnnsec.report.runs import ArtifactReader, metric, param, subsweep
from gnnsec.report.tables import labelled, read_reference


@dataclass
class FigureResult:
    key: str
    caption: str
    data: pd.DataFrame
    fig: Any


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# x axis of each ablation: (label with unit, scale applied to the param value)
FACTOR_AXIS = {
    "attack.injection_ratio": ("injection ratio φ (% of training graphs)", 100.0),
    "attack.trigger_size": ("trigger size t (% of the average node count)", 100.0),
    "data.holding_rate": ("holding rate (% of the dataset, defender's clean data)", 100.0),
    "model.name": ("backbone", None),
    "attack.adaptive_alpha": ("adaptive attack α (weight of L_pq, Eq. 16)", 1.0),
    PARAM["lambda"]: ("λ (weight of L_explain, Eq. 14)", 1.0),
}
BACKBONE_ORDER = ("GCN", "GAT", "GIN", "GraphSAGE")
# figure key -> (sub-sweep's factor, panel keys, line keys)
FACTOR_FIGURES = {
    "gcleaner_fig6": ("attack.injection_ratio", ("dataset", "attack"), ("defense",)),
    "gcleaner_fig7": ("data.holding_rate", ("dataset",), ("attack", "defense")),
    "gcleaner_fig8": ("model.name", ("dataset",), ("attack", "defense")),
    "gcleaner_fig9": ("attack.adaptive_alpha", ("dataset",), ("attack", "defense")),
    "gcleaner_fig11": (PARAM["lambda"], ("dataset",), ("attack", "defense")),
    "gcleaner_fig12": ("attack.trigger_size", ("dataset", "attack"), ("defense",)),
}


def _rows(df: pd.DataFrame, factor: str) -> pd.DataFrame:
    """One row per (run, model): before (the backdoored model, once per setting and seed) and after."""
    scale = FACTOR_AXIS.get(factor, (factor, 1.0))[1]
    x = param(df, factor)
    base = pd.DataFrame(
        {
            "dataset": param(df, PARAM["dataset"]),
            "attack": labelled(param(df, PARAM["attack"]), "attack"),
            "x": x.astype(float) * scale if scale else x.astype(str),
            "seed": param(df, PARAM["seed"]),
        }
    )
    before = base.assign(
        defense="none", asr=100 * metric(df, "backdoor_asr"), acc=100 * metric(df, "backdoor_acc")
    )
    before = before.drop_duplicates(["dataset", "attack", "x", "seed"])
    after = base.assign(
        defense=param(df, PARAM["defense"]),
        asr=100 * metric(df, "defended_asr"),
        acc=100 * metric(df, "defended_acc"),
    )
    return pd.concat([before, after[after["defense"].notna()]], ignore_index=True)


def _join(values: Sequence[Any]) -> str:
    return " / ".join(str(v) for v in values)


def factor_data(runs: pd.DataFrame, key: str, reference: Path | str | None = None) -> pd.DataFrame:
    """The frame behind an ablation figure (empty when its sub-sweep has no runs)."""
    factor, panels, lines = FACTOR_FIGURES[key]
    df = subsweep(runs, ITEM[key].subsweep)
    cols = ["panel", "metric", "line", "series", "x", "mean", "std", "seeds"]
    if df.empty or f"params.{factor}" not in df:
        return pd.DataFrame(columns=cols)
    rows = _rows(df, factor)
    rows["panel"] = rows[list(panels)].astype(str).agg(" / ".join, axis=1)
    rows["line"] = rows[list(lines)].astype(str).agg(" / ".join, axis=1)
    long = rows.melt(
        id_vars=["panel", "line", "x", "seed", *panels, *lines], value_vars=["asr", "acc"], var_name="metric"
    )
    long = long.dropna(subset=["value"])
    g = long.groupby(["panel", "metric", "line", "x"], sort=True)
    out = g["value"].agg(mean="mean", std=lambda s: float(np.std(s.to_numpy(), ddof=0))).reset_index()
    out["seeds"] = g["seed"].nunique().to_numpy()
    out["series"] = "ours"
    paper = _paper_points(rows, key, factor, panels, lines, reference)
    return pd.concat([out, paper], ignore_index=True)[cols] if not paper.empty else out[cols]


def _paper_points(
    rows: pd.DataFrame,
    key: str,
    factor: str,
    panels: Sequence[str],
    lines: Sequence[str],
    reference: Path | str | None,
) -> pd.DataFrame:
    ref = read_reference(ITEM[key].reference, reference)
    if ref is None or factor not in PAPER_DEFAULTS:
        return pd.DataFrame()
    default = PAPER_DEFAULTS[factor]
    scale = FACTOR_AXIS[factor][1]
    x = float(default) * scale if scale else str(default)
    combos = rows[[*panels, *lines]].drop_duplicates()
    merged = combos.merge(ref, on=[c for c in ("dataset", "attack", "defense") if c in combos], how="inner")
    if merged.empty:
        return pd.DataFrame()
    merged["panel"] = merged[list(panels)].astype(str).agg(" / ".join, axis=1)
    merged["line"] = merged[list(lines)].astype(str).agg(" / ".join, axis=1)
    out = merged.melt(
        id_vars=["panel", "line"], value_vars=["asr", "acc"], var_name="metric", value_name="mean"
    )
    return out.assign(x=x, std=np.nan, seeds=np.nan, series="paper")


def _categorical(data: pd.DataFrame) -> list[str] | None:
    xs = data["x"].tolist()
    if all(isinstance(v, int | float) for v in xs):
        return None
    order = list(BACKBONE_ORDER)
    return sorted({str(v) for v in xs}, key=lambda v: (order.index(v) if v in order else 99, v))


def draw_lines(data: pd.DataFrame, caption: str, xlabel: str, ylabels: dict[str, str]) -> Any:
    """Panels in columns, one row per metric; a line per ``line`` with error bars; paper points dashed.
    Each plotted line carries ``gid = "<series>|<line>"`` and its axes the title ``<panel>``."""
    plt = _plt()
    panels = list(dict.fromkeys(data["panel"]))
    metrics = [m for m in ylabels if m in set(data["metric"])]
    cats = _categorical(data)
    pos = (lambda v: cats.index(str(v))) if cats else float
    ncol = min(4, len(panels))  # at most four panels a row; each panel row has one row per metric
    blocks = -(-len(panels) // ncol)
    nrow = len(metrics) * blocks
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol + 0.5, 3.4 * nrow + 0.8), squeeze=False)
    for k in range(len(panels), blocks * ncol):
        for i in range(len(metrics)):
            axes[(k // ncol) * len(metrics) + i][k % ncol].axis("off")
    for i, m in enumerate(metrics):
        for j, panel in enumerate(panels):
            ax = axes[(j // ncol) * len(metrics) + i][j % ncol]
            part = data[(data["panel"] == panel) & (data["metric"] == m)]
            colors: dict[str, Any] = {}
            part = part.assign(_paper=part["series"] == "paper").sort_values("_paper", kind="stable")
            for (series, line), g in part.groupby(["series", "line"], sort=False):
                xs = [pos(v) for v in g["x"]]
                if series == "paper":  # the paper's points in the colour of our line, dashed, crosses
                    (ln,) = ax.plot(
                        xs,
                        g["mean"],
                        "x--",
                        ms=9,
                        mew=2,
                        color=colors.get(line, "black"),
                        label=f"paper: {line}",
                    )
                else:
                    cont = ax.errorbar(
                        xs,
                        g["mean"],
                        yerr=g["std"].fillna(0),
                        fmt="o-" if line != "none" else "s:",
                        ms=4,
                        capsize=3,
                        label=line,
                    )
                    ln = cont.lines[0]
                    colors[line] = ln.get_color()
                ln.set_gid(f"{series}|{line}")
            ax.set_title(panel, fontsize=10)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabels[m])
            ax.set_ylim(-3, 103)
            if cats:
                ax.set_xticks(range(len(cats)), cats)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="best")
    fig.suptitle(caption, fontsize=11)
    fig.tight_layout()
    return fig


def factor_figure(runs: pd.DataFrame, key: str, reference: Path | str | None = None) -> FigureResult | None:
    data = factor_data(runs, key, reference)
    if data.empty:
        return None
    factor = FACTOR_FIGURES[key][0]
    seeds = int(data["seeds"].max())
    caption = f"{ITEM[key].caption} (mean ± std over {seeds} seed{'s' * (seeds != 1)}; line 'none' = before defense)"
    fig = draw_lines(data, caption, FACTOR_AXIS[factor][0], {"asr": "ASR (%)", "acc": "clean ACC (%)"})
    return FigureResult(key, caption, data, fig)


# ---- Figure 5: per-class accuracy ---------------------------------------------------------------------
def fig5_data(runs: pd.DataFrame) -> pd.DataFrame:
    """Per-class test accuracy (metrics ``<model>_acc_class<c>``) of clean, backdoored, defended (GCleaner)."""
    df = subsweep(runs, "main")
    df = df[param(df, PARAM["defense"]) == "gcleaner"]
    rows = []
    for col in [c for c in df.columns if c.startswith("metrics.") and "_acc_class" in c]:
        model, cls = col.removeprefix("metrics.").split("_acc_class")
        if model not in ("clean", "backdoor", "defended"):
            continue
        part = pd.DataFrame(
            {
                "panel": param(df, PARAM["dataset"]).astype(str)
                + " / "
                + labelled(param(df, PARAM["attack"]), "attack"),
                "model": {"backdoor": "backdoored"}.get(model, model),
                "cls": int(cls),
                "seed": param(df, PARAM["seed"]),
                "value": 100 * df[col].astype(float),
            }
        ).dropna(subset=["value"])
        rows.append(part)
    if not rows:
        return pd.DataFrame(columns=["panel", "model", "cls", "mean", "std", "seeds"])
    long = pd.concat(rows, ignore_index=True)
    g = long.groupby(["panel", "model", "cls"], sort=True)
    out = g["value"].agg(mean="mean", std=lambda s: float(np.std(s.to_numpy(), ddof=0))).reset_index()
    out["seeds"] = g["seed"].nunique().to_numpy()
    return out


def fig5(runs: pd.DataFrame, reference: Path | str | None = None) -> FigureResult | None:
    data = fig5_data(runs)
    if data.empty:
        return None
    plt = _plt()
    panels = list(dict.fromkeys(data["panel"]))
    ncol = min(4, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.8 * ncol, 3.2 * nrow + 0.6), squeeze=False)
    models = ["clean", "backdoored", "defended"]
    for k, panel in enumerate(panels):
        ax = axes[k // ncol][k % ncol]
        part = data[data["panel"] == panel]
        classes = sorted(part["cls"].unique())
        for i, model in enumerate(models):
            g = part[part["model"] == model].set_index("cls").reindex(classes)
            ax.bar(
                np.arange(len(classes)) + (i - 1) * 0.27,
                g["mean"],
                0.27,
                yerr=g["std"].fillna(0),
                capsize=2,
                label=model,
            )
        ax.set_xticks(range(len(classes)), [f"class {c}" for c in classes])
        ax.set_title(panel, fontsize=10)
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 105)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
    for k in range(len(panels), nrow * ncol):
        axes[k // ncol][k % ncol].axis("off")
    seeds = int(data["seeds"].max())
    caption = f"{ITEM['gcleaner_fig5'].caption} (GCleaner, mean ± std over {seeds} seed{'s' * (seeds != 1)})"
    fig.suptitle(caption, fontsize=11)
    fig.tight_layout()
    return FigureResult("gcleaner_fig5", caption, data, fig)


# ---- ACC/ASR per unlearning epoch ---------------------------------------------------------------------
def epoch_data(runs: pd.DataFrame, reader: ArtifactReader) -> pd.DataFrame:
    """Per-epoch histories ``catalog.EPOCH_SERIES`` of the main sub-sweep's GCleaner runs, mean over seeds."""
    df = subsweep(runs, "main")
    df = df[param(df, PARAM["defense"]) == "gcleaner"]
    parts = []
    panels = param(df, PARAM["dataset"]).astype(str) + " / " + labelled(param(df, PARAM["attack"]), "attack")
    seeds = param(df, PARAM["seed"])
    for idx, run in df.iterrows():
        panel, seed = panels[idx], seeds[idx]
        for name, key in EPOCH_SERIES.items():
            h = reader.history(run["run_id"], key)
            if not h.empty:
                parts.append(
                    h.assign(
                        panel=panel,
                        line=name,
                        seed=seed,
                        value=100 * h["value"],
                    )
                )
    if not parts:
        return pd.DataFrame(columns=["panel", "metric", "line", "series", "x", "mean", "std", "seeds"])
    long = pd.concat(parts, ignore_index=True)
    long["metric"] = long["line"].map(lambda n: "acc" if n.endswith("acc") else "asr")
    g = long.groupby(["panel", "metric", "line", "step"], sort=True)
    out = g["value"].agg(mean="mean", std=lambda s: float(np.std(s.to_numpy(), ddof=0))).reset_index()
    out["seeds"] = g["seed"].nunique().to_numpy()
    return out.rename(columns={"step": "x"}).assign(series="ours")


def epochs_figure(runs: pd.DataFrame, reader: ArtifactReader) -> FigureResult | None:
    data = epoch_data(runs, reader)
    if data.empty:
        return None
    caption = (
        f"{ITEM['gcleaner_unlearn_epochs'].caption}: val_* = the defender's own held-out clean graphs "
        "(flip = recovered-trigger flip rate), test_* = evaluation side"
    )
    fig = draw_lines(data, caption, "unlearning epoch", {"acc": "ACC (%)", "asr": "ASR / flip rate (%)"})
    return FigureResult("gcleaner_unlearn_epochs", caption, data, fig)
