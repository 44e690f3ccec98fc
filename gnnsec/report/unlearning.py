"""Forget-and-Explain Tables 1 and 2 from tracked runs of the ``unlearning`` sub-sweep, beside the paper.

One row per dataset x backbone x unlearner: mean ± std over seeds of test accuracy before/after (test
nodes outside the forget set), unlearning time relative to Retrain (per seed: unlearn_seconds /
Retrain's unlearn_seconds on the same dataset, backbone and seed), RA_pre, RA_post, HS, ESD, GED, GRS,
ΔRA = RA_pre - RA_post (Table 2's "RA" column) and MI ROC-AUC pre → post. GED is reported as ordered
pairs (2 x our undirected count), the unit the paper's numbers imply (see gnnsec.verify.metrics).

    python -m gnnsec.report.unlearning --experiment gnnsec/<sweep> [--out runs/report/<sweep>]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

# Paper values (Tables 1 and 2; mean, std over 3 seeds) for the datasets in the offline mirror.
# Columns: RA_pre %, RA_post %, HS, ESD, GED, GRS, dRA %, MI pre, MI post.
PAPER: dict[tuple[str, str, str], tuple[float, ...]] = {
    ("Cora", "GCN", "retrain"): (4.77, 0.00, 0.016, 0.014, 6975, 4.67, 4.77, 0.520, 0.525),
    ("Cora", "GCN", "gnndelete"): (4.74, 0.00, 0.015, 0.014, 6975, 2.00, 4.74, 0.520, 0.515),
    ("Cora", "GCN", "grapheditor"): (4.70, 5.32, 0.006, 0.012, 1113, 7.33, -0.62, 0.520, 0.521),
    ("Cora", "GCN", "idea"): (5.00, 4.77, 0.005, 0.005, 0, 1.67, 0.23, 0.519, 0.519),
    ("Cora", "GAT", "retrain"): (5.27, 0.00, 0.031, 0.031, 7151, 4.67, 5.27, 0.520, 0.511),
    ("Cora", "GAT", "gnndelete"): (5.28, 0.00, 0.032, 0.032, 7151, 3.67, 5.28, 0.520, 0.506),
    ("Cora", "GAT", "grapheditor"): (5.11, 3.95, 0.010, 0.022, 1134, 7.33, 1.16, 0.520, 0.513),
    ("Cora", "GAT", "idea"): (5.20, 5.10, 0.005, 0.005, 0, 2.67, 0.10, 0.519, 0.519),
    ("CiteSeer", "GCN", "retrain"): (5.60, 0.00, 0.028, 0.029, 4803, 4.00, 5.60, 0.559, 0.553),
    ("CiteSeer", "GCN", "gnndelete"): (5.23, 0.00, 0.027, 0.028, 4803, 3.67, 5.23, 0.559, 0.526),
    ("CiteSeer", "GCN", "grapheditor"): (5.56, 5.17, 0.012, 0.022, 962, 8.00, 0.38, 0.559, 0.561),
    ("CiteSeer", "GCN", "idea"): (4.97, 4.95, 0.012, 0.012, 0, 3.00, 0.01, 0.559, 0.557),
    ("CiteSeer", "GAT", "retrain"): (4.61, 0.00, 0.024, 0.024, 4611, 3.67, 4.61, 0.550, 0.553),
    ("CiteSeer", "GAT", "gnndelete"): (4.63, 0.00, 0.023, 0.023, 4611, 4.00, 4.63, 0.550, 0.536),
    ("CiteSeer", "GAT", "grapheditor"): (4.58, 4.01, 0.011, 0.023, 853, 8.00, 0.57, 0.550, 0.556),
    ("CiteSeer", "GAT", "idea"): (4.70, 4.76, 0.010, 0.009, 0, 2.00, -0.06, 0.550, 0.547),
}
PAPER_COLS = ["RA_pre%", "RA_post%", "HS", "ESD", "GED", "GRS", "dRA%", "MI_pre", "MI_post"]
ORDER = ["retrain", "gnndelete", "grapheditor", "idea"]


def _ms(s: pd.Series, scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    s = s.astype(float) * scale
    return f"{fmt.format(s.mean())} ± {fmt.format(s.std(ddof=0) if len(s) > 1 else 0.0)}"


def table(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of Tables 1-2 (ours and the paper's) from a runs DataFrame (gnnsec.report.runs.load_runs)."""
    df = df[df["subsweep"] == "unlearning"].copy()
    key = {
        "dataset": "params.data.dataset",
        "model": "params.model.name",
        "unlearner": "params.unlearning.name",
    }
    for k, col in key.items():
        df[k] = df[col]
    df["seed"] = df["params.train.seed"]
    retrain = df[df["unlearner"] == "retrain"].set_index(["dataset", "model", "seed"])[
        "metrics.unlearn_seconds"
    ]
    df["time_vs_retrain"] = [
        r["metrics.unlearn_seconds"] / retrain.get((r["dataset"], r["model"], r["seed"]), float("nan"))
        for _, r in df.iterrows()
    ]
    rows = []
    for (ds, model, name), g in df.groupby(["dataset", "model", "unlearner"]):
        m = lambda c, g=g: g[f"metrics.{c}"]  # noqa: E731
        row = {
            "dataset": ds,
            "backbone": model,
            "unlearner": name,
            "seeds": len(g),
            "acc_before%": _ms(m("base_acc"), 100, "{:.1f}"),
            "acc_after%": _ms(m("unlearned_acc"), 100, "{:.1f}"),
            "time_vs_retrain": _ms(g["time_vs_retrain"], 1, "{:.3f}"),
            "RA_pre%": _ms(m("verify_ra_pre"), 100, "{:.2f}"),
            "RA_post%": _ms(m("verify_ra_post"), 100, "{:.2f}"),
            "HS": _ms(m("verify_hs")),
            "ESD": _ms(m("verify_esd")),
            "GED(ordered)": _ms(m("verify_ged"), 2, "{:.0f}"),
            "GRS": _ms(m("verify_grs"), 1, "{:.2f}"),
            "dRA%": _ms(m("verify_ra_drop"), 100, "{:.2f}"),
            "MI_pre": _ms(m("verify_mi_auc_pre")),
            "MI_post": _ms(m("verify_mi_auc_post")),
            "RA_probe_post%": _ms(m("verify_ra_probe_post"), 100, "{:.2f}"),
            "MI_forget_pre": _ms(m("verify_mi_forget_pre")),
            "MI_forget_post": _ms(m("verify_mi_forget_post")),
        }
        paper = PAPER.get((ds, model, name))
        row.update({f"paper_{c}": (v if paper else None) for c, v in zip(PAPER_COLS, paper or [None] * 9)})
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["_o"] = out["unlearner"].map(ORDER.index)
    return out.sort_values(["dataset", "backbone", "_o"]).drop(columns="_o").reset_index(drop=True)


def markdown(t: pd.DataFrame) -> str:
    cells = [[("" if v is None or v != v else str(v)) for v in row] for row in t.itertuples(index=False)]
    lines = ["| " + " | ".join(t.columns) + " |", "|" + "---|" * len(t.columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells]) + "\n"


def main() -> None:
    from gnnsec.report.runs import load_runs

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--experiment", required=True)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    t = table(load_runs(args.experiment))
    out = Path(args.out or f"runs/report/{args.experiment.split('/')[-1]}")
    out.mkdir(parents=True, exist_ok=True)
    t.to_csv(out / "forget_explain.csv", index=False)
    text = markdown(t)
    (out / "forget_explain.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
