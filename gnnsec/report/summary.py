"""The one table format of the report: long rows ``<groups>, metric, ours_mean, ours_std, seeds, runs, paper``.

Every paper table is built by ``summarize`` (mean and population std, ``ddof=0``, over seeds: the spread of
the seeds that ran, as the papers report it) and ``attach_paper`` (the paper's value from its reference CSV,
matched on the table's groups), then written as CSV (the long rows) and Markdown (rows = groups, a column
per metric, cells ``ours±std (paper)``). ``differences`` lists the cells more than 10 points from the paper.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

# metrics whose unit is percent points (the ">10 points from the paper" rule applies to these only)
PERCENT = {
    "asr",
    "acc",
    "asr_delta",
    "acc_delta",
    "recovery_asr",
    "unlearn_asr",
    "ra_pre",
    "ra_post",
    "ra_drop",
    "det_precision",
    "det_recall",
    "det_f1",
    "acc_before",
    "acc_after",
}


@dataclass
class Table:
    """A rendered table: its long frame plus how to lay it out."""

    key: str
    caption: str
    frame: pd.DataFrame
    groups: list[str]
    metrics: list[str]
    note: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # {"test graphs": "graphs"}: show graph counts
    show_seeds: bool = True

    @property
    def empty(self) -> bool:
        return self.frame.empty


def summarize(
    by: Mapping[str, pd.Series],
    values: Mapping[str, pd.Series],
    seeds: pd.Series,
    graphs: Mapping[str, pd.Series] | None = None,
) -> pd.DataFrame:
    """Long summary: per group and metric, mean/std over runs (one per seed), #seeds, #runs, and the mean
    number of test graphs behind the metric (``graphs[metric]``, e.g. ASR: triggered non-target graphs)."""
    keys = list(by)
    cols = [*keys, "metric", "ours_mean", "ours_std", "seeds", "runs", "graphs"]
    parts = []
    for name, series in values.items():
        part = pd.DataFrame({k: v.to_numpy() for k, v in by.items()}, index=series.index)
        part["metric"] = name
        part["value"] = pd.to_numeric(series, errors="coerce").to_numpy()
        part["_seed"] = seeds.to_numpy() if len(seeds) == len(series) else np.nan
        g = (graphs or {}).get(name)
        part["_graphs"] = g.to_numpy() if g is not None else np.nan
        parts.append(part)
    long = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if long.empty or long["value"].isna().all():
        return pd.DataFrame(columns=cols)
    long = long.dropna(subset=["value"])
    for k in keys:  # unhashable params (lists) become their text
        long[k] = long[k].map(
            lambda v: v if v is None or isinstance(v, int | float | str | bool) else repr(v)
        )
    grouped = long.groupby([*keys, "metric"], sort=False, dropna=False)
    out = grouped["value"].agg(ours_mean="mean", ours_std=lambda s: float(np.std(s.to_numpy(), ddof=0)))
    out["seeds"] = grouped["_seed"].nunique()
    out["runs"] = grouped.size()
    out["graphs"] = grouped["_graphs"].mean()
    order = {m: i for i, m in enumerate(values)}
    out = out.reset_index()
    out["_o"] = out["metric"].map(order)
    return out.sort_values([*keys, "_o"], kind="stable").drop(columns="_o")[cols].reset_index(drop=True)


def melt_reference(ref: pd.DataFrame | None, ids: Sequence[str], columns: Mapping[str, str]) -> pd.DataFrame:
    """A wide reference CSV as long rows ``ids..., metric, paper``; ``columns`` maps CSV column -> metric."""
    if ref is None or ref.empty:
        return pd.DataFrame(columns=[*ids, "metric", "paper"])
    present = {c: m for c, m in columns.items() if c in ref}
    long = ref[list(ids) + list(present)].melt(id_vars=list(ids), var_name="metric", value_name="paper")
    long["metric"] = long["metric"].map(present)
    long["paper"] = pd.to_numeric(long["paper"], errors="coerce")
    return long


def attach_paper(ours: pd.DataFrame, paper: pd.DataFrame, on: Sequence[str]) -> pd.DataFrame:
    """Add the paper's value beside ours (NaN where the paper has none)."""
    if paper.empty or ours.empty:
        return ours.assign(paper=np.nan)
    left = ours.copy()
    right = paper.copy()
    for k in on:  # match on text: 3 == 3.0 == "3"
        left[f"_k_{k}"] = left[k].map(_key)
        right[f"_k_{k}"] = right[k].map(_key)
    right = right.drop(columns=list(on)).drop_duplicates([f"_k_{k}" for k in on] + ["metric"])
    merged = left.merge(right, on=[f"_k_{k}" for k in on] + ["metric"], how="left")
    return merged.drop(columns=[f"_k_{k}" for k in on])


def _key(v: object) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int | float) and not pd.isna(v):
        return f"{float(v):g}"
    return str(v)


def _num(v: float, metric: str) -> str:
    if pd.isna(v):
        return "n/a"
    if metric in PERCENT:
        return f"{v:.2f}"
    if float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:.3f}" if abs(v) < 1 else f"{v:,.2f}"


def cell(mean: float, std: float, paper: float, metric: str) -> str:
    text = _num(mean, metric) + ("" if pd.isna(std) else f"±{_num(std, metric)}")
    return text + ("" if pd.isna(paper) else f" ({_num(paper, metric)})")


def display_frame(table: Table) -> pd.DataFrame:
    """The table as text cells: rows = groups, a column per metric (``ours±std (paper)``), seeds, extras."""
    head = [*table.groups, *table.metrics, *(["seeds"] if table.show_seeds else []), *table.extra]
    if table.empty:
        return pd.DataFrame(columns=head)
    rows = []
    for keys, group in table.frame.groupby(table.groups, sort=False, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        by = {r["metric"]: r for _, r in group.iterrows()}
        cells = [k if isinstance(k, str) else _key(k) for k in keys]
        for m in table.metrics:
            r = by.get(m)
            if r is not None and isinstance(r.get("ours"), str):  # a text cell (e.g. graphs per class)
                paper = r.get("paper_text")
                cells.append(r["ours"] + (f" ({paper})" if isinstance(paper, str) else ""))
                continue
            cells.append("" if r is None else cell(r["ours_mean"], r["ours_std"], r.get("paper", np.nan), m))
        if table.show_seeds:
            cells.append(str(int(group["seeds"].max())))
        if table.extra:
            counts = [
                f"{m} {by[m]['graphs']:.0f}"
                for m in table.metrics
                if m in by and not pd.isna(by[m]["graphs"])
            ]
            cells.append(", ".join(counts))
        rows.append(cells)
    return pd.DataFrame(rows, columns=head)


NOTE = "Mean±std over seeds (population std, ddof=0); the paper's value in parentheses."


def markdown(table: Table) -> str:
    """``**caption**``, a Markdown table of :func:`display_frame`, and the table's note."""
    shown = display_frame(table)
    if shown.empty:
        return f"**{table.caption}**\n\n_no runs_\n"
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return f"**{table.caption}**\n\n" + "\n".join(lines) + f"\n\n{NOTE} {table.note}".rstrip() + "\n"


def differences(table: Table, threshold: float = 10.0) -> pd.DataFrame:
    """Cells of a percent metric where ours is more than ``threshold`` points from the paper's value."""
    df = table.frame
    if df.empty or "paper" not in df:
        return pd.DataFrame()
    hit = df[df["metric"].isin(PERCENT) & ((df["ours_mean"] - df["paper"]).abs() > threshold)].copy()
    if hit.empty:
        return pd.DataFrame()
    hit["where"] = (
        hit[table.groups].map(lambda v: v if isinstance(v, str) else _key(v)).agg(" / ".join, axis=1)
    )
    hit["table"] = table.caption.split(":", 1)[0]
    hit["gap"] = hit["ours_mean"] - hit["paper"]
    return hit[["table", "where", "metric", "ours_mean", "paper", "gap", "seeds"]]


# ---- files ----------------------------------------------------------------------------------------------
def atomic_write_csv(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    os.close(fd)
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def write_table(table: Table, out: Path) -> list[Path]:
    from gnnsec.cache import atomic_write_text

    csv = atomic_write_csv(table.frame, out / f"{table.key}.csv")
    md = out / f"{table.key}.md"
    atomic_write_text(md, markdown(table))
    return [csv, md]
