"""The dry-run's cost model reads its constants from a calibration file and composes them as documented."""

from __future__ import annotations

import json

import pytest

from sweeps import cost_model, estimate, grids
from sweeps.spec import Preset, SubSweep, expand


def _write(tmp_path, **constants):  # noqa: ANN001, ANN202
    path = tmp_path / "cost_model.json"
    data = {"date": "today", "machine": {"host": "box"}, "constants": constants}
    path.write_text(json.dumps(data))
    return path


def test_constants_come_from_the_calibration_file(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    path = _write(tmp_path, epoch_seconds={"MUTAG": 0.5}, trial_overhead=3.0, gcleaner_factor=2.0)
    cm = cost_model.load(path)
    assert cm.epoch("MUTAG") == 0.5 and cm.trial_overhead == 3.0 and "calibrated today on box" in cm.source
    missing = cost_model.load(tmp_path / "absent.json")
    assert "uncalibrated" in missing.source and missing.epoch("AIDS") > 0
    monkeypatch.setenv("GNNSEC_COST_MODEL", str(path))
    assert cost_model.load().epoch("MUTAG") == 0.5


def test_trial_seconds_composes_the_measured_terms() -> None:
    cm = cost_model.CostModel(
        epoch_seconds={"MUTAG": 2.0},
        model_factor={"GCN": 0.5},
        trial_overhead=1.0,
        overhead_epochs=3.0,
        attack_factor={"sub_ba": 1.5},
        attack_fixed={"sub_ba": 4.0},
        defense_factor={"abl": 2.0},
        defense_fixed={"abl": 10.0},
    )
    base = {"data.dataset": "MUTAG", "attack.name": "sub_ba", "train.epochs": 10, "defense.name": "abl"}
    subs = {"s": SubSweep("s", "t", axes={"model.name": ("GIN", "GCN")})}
    gin, gcn = expand(subs, base, Preset("p", "")).trials
    # overhead 1 + 3 epochs; clean 10 epochs; backdoor 4 + 1.5 x 10; ABL 10 + 2 x 10 (epochs of 2 s)
    want = 1.0 + 2.0 * (3 + 10 + (4 + 15) + (10 + 20))
    assert estimate.trial_seconds(gin, True, True, cm) == pytest.approx(want)
    assert estimate.trial_seconds(gin, False, False, cm) == pytest.approx(1.0 + 2.0 * (3 + 30))
    assert estimate.trial_seconds(gcn, True, True, cm) == pytest.approx(1.0 + 0.5 * (want - 1.0))
    gpu = cost_model.gpu_node(cm)
    assert gpu.epoch("MUTAG") == cm.epoch("MUTAG")  # small graphs: per-batch bound, not faster (assumed)


def test_dry_run_prints_models_and_both_machines(capsys) -> None:  # noqa: ANN001
    from sweeps.driver import main

    assert main(["--preset", "quick", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "distinct models to train" in out and "on a GPU node" in out and "cost model:" in out
    assert grids.PRESETS["quick"].name in out
