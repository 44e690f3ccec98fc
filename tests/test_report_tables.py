"""Renderers of the tables whose sub-sweeps other work streams add (Tables 5-7, Forget-and-Explain 1-2) and
of the remaining ablation figures, checked on synthetic run frames with the metric names of
``gnnsec.report.catalog`` (the names are fixed there when those streams are merged)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gnnsec.report.catalog import ITEMS, METRIC, PARAM
from gnnsec.report.figures import FACTOR_FIGURES, factor_figure
from gnnsec.report.summary import differences, markdown
from gnnsec.report.tables import table5, table6, table7
from gnnsec.report.tables_unlearning import fe_table1, fe_table2


def frame(rows: list[dict]) -> pd.DataFrame:
    """Runs as ``load_runs`` returns them: ``params.<key>``, ``metrics.<name>``, ``subsweep``."""
    out = []
    for r in rows:
        row = {"subsweep": r["subsweep"], "run_id": f"r{len(out)}"}
        row.update({f"params.{PARAM.get(k, k)}": v for k, v in r.get("params", {}).items()})
        row.update({f"metrics.{METRIC.get(k, k)}": v for k, v in r.get("metrics", {}).items()})
        out.append(row)
    return pd.DataFrame(out)


def _row(table: pd.DataFrame, **keys: object) -> pd.Series:
    mask = np.ones(len(table), dtype=bool)
    for k, v in keys.items():
        mask &= table[k].astype(str) == str(v)
    assert mask.sum() == 1, (keys, table)
    return table[mask].iloc[0]


def test_forget_and_explain_tables_from_unlearning_runs() -> None:
    rows = []
    for seed in (0, 1, 2):
        for unlearner, ra_post, ged in (("retrain", 0.0, 7000 + seed), ("idea", 0.049, 0)):
            rows.append(
                {
                    "subsweep": "unlearning",
                    "params": {"dataset": "Cora", "model": "GCN", "unlearner": unlearner, "seed": seed},
                    "metrics": {
                        "ra_pre": 0.05 + 0.001 * seed,
                        "ra_post": ra_post,
                        "hs": 0.016,
                        "esd": 0.014,
                        "ged": ged,
                        "grs": 4.0,
                        "mi_pre": 0.52,
                        "mi_post": 0.525,
                        "unlearn_acc_before": 0.81,
                        "unlearn_acc_after": 0.8,
                        "unlearn_seconds": 1.5,
                    },
                }
            )
    runs = frame(rows)
    t1 = fe_table1(runs).frame
    ra = _row(t1, unlearner="Retrain", metric="ra_pre")
    assert ra["ours_mean"] == pytest.approx(5.1) and ra["seeds"] == 3
    assert ra["ours_std"] == pytest.approx(np.std([5.0, 5.1, 5.2]))
    assert ra["paper"] == pytest.approx(4.77)  # the paper's Cora/GCN/Retrain RA_pre
    ged = _row(t1, unlearner="Retrain", metric="ged")
    # undirected edges logged, ordered pairs reported (the unit of the paper's counts)
    assert ged["ours_mean"] == pytest.approx(2 * 7001) and ged["paper"] == pytest.approx(6975)
    assert _row(t1, unlearner="IDEA", metric="ged")["paper"] == 0
    t2 = fe_table2(runs)
    drop = _row(t2.frame, unlearner="IDEA", metric="ra_drop")
    assert drop["ours_mean"] == pytest.approx(5.1 - 4.9) and drop["paper"] == pytest.approx(0.23)
    assert "| Cora | GCN | Retrain | 5.10±0.08 (4.77) |" in markdown(t2)
    assert differences(t2).empty  # nothing 10 points away


def test_detection_auxiliary_and_heatmap_tables() -> None:
    rows = []
    for seed in (0, 1):
        for defense, asr in (("ed", 0.6), ("xgbd", 0.2), ("gcleaner", 0.05)):
            det = {"det_precision": 0.5, "det_recall": 0.8, "det_f1": 0.6} if defense != "gcleaner" else {}
            rows.append(
                {
                    "subsweep": "detection",
                    "params": {"dataset": "AIDS", "attack": "sub_ba", "defense": defense, "seed": seed},
                    "metrics": {"asr_after": asr, "acc_after": 0.9, **det},
                }
            )
        for aux, asr in (("NCI1", 0.1), ("COLLAB", 0.15)):
            rows.append(
                {
                    "subsweep": "auxiliary",
                    "params": {
                        "dataset": "AIDS",
                        "attack": "gta",
                        "defense": "gcleaner",
                        "auxiliary": aux,
                        "seed": seed,
                    },
                    "metrics": {"asr_after": asr, "acc_after": 0.9},
                }
            )
        rows.append(
            {
                "subsweep": "main",
                "params": {"dataset": "AIDS", "attack": "gta", "defense": "gcleaner", "seed": seed},
                "metrics": {"asr_after": 0.03, "acc_after": 0.95, "asr_before": 0.99, "acc_before": 0.97},
            }
        )
        for heatmap, asr in (("none", 0.2), ("gradcam", 0.05)):
            rows.append(
                {
                    "subsweep": "heatmap",
                    "params": {"dataset": "AIDS", "attack": "sub_ba", "heatmap": heatmap, "seed": seed},
                    "metrics": {"asr_after": asr + 0.01 * seed, "acc_after": 0.9},
                }
            )
    runs = frame(rows)
    t7 = table7(runs).frame
    ed = _row(t7, defense="ed", metric="asr")
    assert ed["ours_mean"] == pytest.approx(60.0) and ed["paper"] == pytest.approx(26.64)
    assert _row(t7, defense="xgbd", metric="det_f1")["ours_mean"] == pytest.approx(60.0)
    assert list(dict.fromkeys(t7["defense"])) == ["ed", "xgbd", "gcleaner"]
    t5 = table5(runs).frame
    origin = _row(t5, auxiliary_dataset="Origin", metric="asr")  # the defender's own AIDS data (main)
    assert origin["ours_mean"] == pytest.approx(3.0) and origin["paper"] == pytest.approx(2.04)
    assert _row(t5, auxiliary_dataset="NCI1", metric="asr")["paper"] == pytest.approx(12.28)
    t6 = table6(runs).frame
    delta = _row(t6, heatmap_method="gradcam", metric="asr_delta")
    assert delta["ours_mean"] == pytest.approx(-15.0) and delta["paper"] == pytest.approx(6.64 - 13.01)


@pytest.mark.parametrize("key", sorted(FACTOR_FIGURES))
def test_every_ablation_figure_plots_its_sub_sweep(key: str) -> None:
    factor, _, _ = FACTOR_FIGURES[key]
    sub = next(i.subsweep for i in ITEMS if i.key == key)
    values = ["GCN", "GIN"] if factor == "model.name" else [0.05, 0.2]
    rows = []
    for seed in (0, 1):
        for j, v in enumerate(values):
            rows.append(
                {
                    "subsweep": sub,
                    "params": {
                        "dataset": "AIDS",
                        "attack": "sub_ba",
                        "defense": "gcleaner",
                        "seed": seed,
                        factor: v,
                    },
                    "metrics": {
                        "asr_before": 0.9,
                        "acc_before": 0.97,
                        "asr_after": 0.1 * (j + 1) + 0.02 * seed,
                        "acc_after": 0.9,
                    },
                }
            )
    result = factor_figure(frame(rows), key, Path("/nonexistent"))
    assert result is not None
    ax = next(a for a in result.fig.axes if a.get_ylabel() == "ASR (%)")
    line = next(
        ln
        for ln in ax.lines
        if ln.get_gid() and ln.get_gid().startswith("ours|") and "gcleaner" in ln.get_gid()
    )
    assert list(line.get_ydata()) == pytest.approx([11.0, 21.0])  # means over the two seeds, percent
    assert ax.get_xlabel() and "ASR" in ax.get_ylabel()
    import matplotlib.pyplot as plt

    plt.close(result.fig)


def test_table2_statistics_beside_the_papers(mirror: Path) -> None:
    from gnnsec.report.tables import table2

    table = table2(frame([{"subsweep": "main", "params": {"dataset": "Fingerprint"}}]))
    f = table.frame
    assert _row(f, metric="graphs")["ours_mean"] == 1661 and _row(f, metric="graphs")["paper"] == 1661
    assert _row(f, metric="avg_nodes")["ours_mean"] == pytest.approx(8.15)
    assert "| Fingerprint | 1,661 (1,661) |" in markdown(table)
    assert "538/517/109/497 (538/517/109/497)" in markdown(table)
