"""The sweep grids pick the baselines up: Table 3 / Figures 6 and 12 list abl, prune, smoothing; the
``detection`` sub-sweep (Table 7) runs ED, XGBD and GCleaner on AIDS x four attacks; a sub-sweep that
loses a listed method says so at WARNING level, naming it."""

from __future__ import annotations

import logging

import pytest

from sweeps import grids
from sweeps.driver import build_parser, dry_run_text, make_plan
from sweeps.spec import Preset, SubSweep, expand

BASE = {"data.dataset": "MUTAG", "attack.name": "sub_ba", "defense.name": "finetune", "train.epochs": 2}


def test_paper_plan_runs_every_baseline_and_the_detection_subsweep() -> None:
    args = build_parser().parse_args(["--preset", "paper", "--seeds", "0"])
    plan = make_plan(args)
    by_sub: dict[str, set[str]] = {}
    for t in plan.trials:
        by_sub.setdefault(t.subsweep, set()).add(
            t.config["defense"]["name"] if t.config.get("defense") else ""
        )
    for sub in ("main", "injection_ratio", "trigger_size"):
        assert {"abl", "prune", "smoothing", "finetune", "gcleaner"} <= by_sub[sub], sub
        assert sub not in plan.dropped
    assert by_sub["detection"] == {"ed", "xgbd", "gcleaner"}
    detection = [t for t in plan.trials if t.subsweep == "detection"]
    assert {t.config["data"]["dataset"] for t in detection} == {"AIDS"}
    assert len(detection) == len(grids.ATTACKS4) * 3
    text = dry_run_text(plan, args)
    assert "detection" in text and "Table 7" in text


def test_a_lost_method_is_a_warning_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    subs = {
        "grid": SubSweep(
            "grid",
            "t",
            axes={"defense.name": ("abl", "no_such_defense")},
            methods={"defense.name": "defense"},
        )
    }
    with caplog.at_level(logging.WARNING):
        plan = expand(subs, BASE, Preset("t", ""))
    assert {t.config["defense"]["name"] for t in plan.trials} == {"abl"}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no_such_defense" in r.getMessage() and "grid" in r.getMessage() for r in warnings)
