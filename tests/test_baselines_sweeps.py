"""The sweep grids pick the baselines up: Table 3 / Figures 6 and 12 list abl, prune, smoothing; the
``detection`` sub-sweep (Table 7) runs ED, XGBD and GCleaner on AIDS x four attacks; a sub-sweep that
loses a listed method says so at WARNING level, naming it."""

from __future__ import annotations

import copy
import logging

import pytest

from sweeps import grids
from sweeps.driver import build_parser, dry_run_text, make_plan
from sweeps.spec import Preset, SubSweep, TrialSpec, expand

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


def test_dry_run_counts_the_training_of_training_time_defenses() -> None:
    """A training-time defense retrains on the whole training set: its estimate is a full training run
    (ABL), plus the reference model (Prune), plus helper, explanations and retraining (ED), never the
    holding-set-sized cost of a post-training defense."""
    from sweeps import cost_model
    from sweeps.estimate import _fit_seconds, trial_seconds

    args = build_parser().parse_args(
        ["--preset", "paper", "--only", "main", "--datasets", "AIDS", "--seeds", "0"]
    )
    trials = {
        t.config["defense"]["name"]: t
        for t in make_plan(args).trials
        if t.config["attack"]["name"] == "sub_ba"
    }
    detection = make_plan(
        build_parser().parse_args(["--preset", "paper", "--only", "detection", "--seeds", "0"])
    )
    trials["ed"] = next(t for t in detection.trials if t.config["defense"]["name"] == "ed")
    cost = {name: trial_seconds(t, new_clean=False, new_backdoor=False) for name, t in trials.items()}
    c = trials["abl"].config
    full_fit = _fit_seconds("AIDS", c["data"]["train_ratio"], c["train"]["epochs"])
    # each trains a model on the whole (poisoned) training set; smoothing's subgraphs are cheaper per epoch
    # (calibrated 2026-12-01 05:56 and 06:06 UTC: ~0.5 of an epoch per epoch plus ~2.9 epochs of fixed work)
    for name, share in (("abl", 0.6), ("prune", 0.6), ("smoothing", 0.4)):
        assert cost[name] - cost["finetune"] > share * full_fit, name
    # ED's nominal work (helper model, explanations of every training graph, retraining), independent of the
    # calibration's measured constants (which move with the machine's load between calibrations)
    nominal = cost_model.fallback()
    ed_nominal = trial_seconds(trials["ed"], new_clean=False, new_backdoor=False, cm=nominal)
    assert ed_nominal > 1.5 * _fit_seconds("AIDS", c["data"]["train_ratio"], c["train"]["epochs"], cm=nominal)
    assert cost["ed"] > cost["abl"] - cost["finetune"]  # calibrated: more than one full training run
    more = with_params(trials["prune"], {"reference_epochs": 80})  # settings scale the calibrated cost
    assert trial_seconds(more, new_clean=False, new_backdoor=False) > cost["prune"] + 0.3 * full_fit


def with_params(spec: TrialSpec, params: dict[str, object]) -> TrialSpec:
    """``spec`` with extra defense params (a copy)."""
    out = copy.deepcopy(spec)
    out.config["defense"].setdefault("params", {}).update(params)
    return out


def test_baselines_fig12_preset_runs_prune_and_smoothing_over_trigger_sizes() -> None:
    plan = make_plan(build_parser().parse_args(["--preset", "baselines_fig12"]))
    cells = {(t.config["attack"]["trigger_size"], t.config["defense"]["name"]) for t in plan.trials}
    sizes = {size for size, _ in cells}
    assert len(sizes) >= 3
    assert {(s, d) for s in sizes for d in ("prune", "smoothing")} <= cells
    assert {t.config["data"]["dataset"] for t in plan.trials} == {"AIDS"}
    assert not plan.dropped and not plan.skipped
