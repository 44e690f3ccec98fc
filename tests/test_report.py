"""gnnsec.report: Table 3 and ablation figures computed from MLflow runs (synthetic runs, tmp store)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gnnsec.report import build_report, load_runs, table3, table3_markdown
from gnnsec.tracking import FACTOR_TAG, SUBSWEEP_TAG, TrackerSettings, TrialTracker


def _config(dataset: str, attack: str, defense: str, seed: int, ratio: float = 0.05) -> dict:
    return {
        "data": {"dataset": dataset, "split_seed": seed},
        "train": {"seed": seed},
        "attack": {"name": attack, "injection_ratio": ratio, "seed": seed},
        "defense": {"name": defense, "seed": seed},
    }


@pytest.fixture()
def store(tmp_path: Path) -> tuple[str, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = TrialTracker(TrackerSettings(uri, "gnnsec/rep", (tmp_path / "art").as_uri()))
    i = 0

    def add(cfg: dict, metrics: dict, sub: str, factor: str | None = None, status: str = "FINISHED") -> None:
        nonlocal i
        i += 1
        tags = {SUBSWEEP_TAG: sub, **({FACTOR_TAG: factor} if factor else {})}
        tracker.start(f"t{i}", f"r{i}", cfg, tags)
        tracker.log_metrics(f"t{i}", metrics)
        tracker.finish(f"t{i}", status)

    for seed, (bd_asr, gc_asr, ft_asr) in enumerate([(0.9, 0.1, 0.5), (1.0, 0.2, 0.7)]):
        for attack in ("sub_ba", "gta"):
            base = {"backdoor_asr": bd_asr, "backdoor_acc": 0.9, "backdoor_n": 400, "backdoor_asr_n": 320}
            add(
                _config("AIDS", attack, "gcleaner", seed),
                {
                    **base,
                    "defended_asr": gc_asr,
                    "defended_acc": 0.95,
                    "defended_n": 400,
                    "defended_asr_n": 320,
                },
                "main",
            )
            add(
                _config("AIDS", attack, "finetune", seed),
                {
                    **base,
                    "defended_asr": ft_asr,
                    "defended_acc": 0.85,
                    "defended_n": 400,
                    "defended_asr_n": 320,
                },
                "main",
            )
        for ratio, asr in ((0.01, 0.3), (0.05, 0.1), (0.09, 0.05)):
            add(
                _config("AIDS", "sub_ba", "gcleaner", seed, ratio),
                {"backdoor_asr": 0.8 + ratio, "backdoor_acc": 0.9, "defended_asr": asr, "defended_acc": 0.9},
                "injection_ratio",
                "attack.injection_ratio",
            )
    add(_config("AIDS", "sub_ba", "gcleaner", 9), {"defended_asr": 0.0}, "main", status="FAILED")
    ref = tmp_path / "ref"
    ref.mkdir()
    pd.DataFrame(
        [["AIDS", "Sub-BA", "none", 98.0, 97.0], ["AIDS", "Sub-BA", "gcleaner", 6.64, 95.37]],
        columns=["dataset", "attack", "defense", "asr", "acc"],
    ).to_csv(ref / "gcleaner_table3.csv", index=False)
    return uri, str(ref)


def test_table3_aggregates_seeds_and_defenses(store: tuple[str, str]) -> None:
    uri, ref = store
    runs = load_runs("gnnsec/rep", uri)
    assert len(runs) == 2 * 2 * 2 + 6 and set(runs["status"]) == {"FINISHED"}  # the FAILED run is left out
    t = table3(runs, ref).set_index(["dataset", "attack", "defense"])
    before = t.loc[("AIDS", "sub_ba", "none")]
    assert before["asr_mean"] == pytest.approx(95.0) and before["asr_std"] == pytest.approx(5.0)
    assert before["seeds"] == 2 and before["acc_graphs"] == 400 and before["asr_graphs"] == 320
    gc = t.loc[("AIDS", "sub_ba", "gcleaner")]
    assert gc["asr_mean"] == pytest.approx(15.0) and gc["acc_mean"] == pytest.approx(95.0)
    assert gc["paper_asr"] == pytest.approx(6.64) and gc["paper_acc"] == pytest.approx(95.37)
    assert t.loc[("AIDS", "sub_ba", "finetune")]["asr_mean"] == pytest.approx(60.0)
    assert pd.isna(t.loc[("AIDS", "gta", "gcleaner")]["paper_asr"])  # not in this reference file
    md = table3_markdown(table3(runs, ref))
    assert "15.00±5.00 (6.64)" in md and "| AIDS | Sub-BA |" in md and "| AIDS | GTA |" in md


def test_build_report_writes_tables_and_figures(store: tuple[str, str], tmp_path: Path) -> None:
    uri, ref = store
    out = tmp_path / "report"
    written = build_report("gnnsec/rep", uri, out, ref)
    names = {p.name for p in written["tables"] + written["figures"]}
    assert {
        "table3.csv",
        "table3.md",
        "ablation_injection_ratio.csv",
        "ablation_injection_ratio.png",
    } <= names
    png = out / "ablation_injection_ratio.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    ablation = pd.read_csv(out / "ablation_injection_ratio.csv")
    assert list(ablation["attack.injection_ratio"]) == [0.01, 0.05, 0.09]
    assert list(ablation["defended_asr_mean"].round(6)) == [30.0, 10.0, 5.0]
    assert not list(out.glob(".*"))  # atomic writes leave no temporary files behind
