"""Rough CPU-time estimates of a plan (``--dry-run``): a GIN cost model and the cache's build-once order."""

from __future__ import annotations

import argparse
import os
from typing import Any

from sweeps import grids
from sweeps.spec import Plan, TrialSpec, schedule


def _fit_seconds(dataset: str, graphs_fraction: float, epochs: int) -> float:
    graphs, nodes = grids.DATASET_SIZE.get(dataset, (1000, 20.0))
    factor = grids.COLLAB_EDGE_FACTOR if dataset == "COLLAB" else 1.0
    return epochs * graphs * graphs_fraction * nodes * grids.SECONDS_PER_NODE_EPOCH * factor


def trial_seconds(t: TrialSpec, new_clean: bool, new_backdoor: bool) -> float:
    """Rough single-core seconds of one trial (cold cache for the artifacts it is first to need)."""
    c = t.config
    ds, ratio, epochs = c["data"]["dataset"], c["data"]["train_ratio"], c["train"]["epochs"]
    seconds = grids.TRIAL_OVERHEAD_SECONDS
    if new_clean:
        seconds += _fit_seconds(ds, ratio, epochs)
    if new_backdoor:
        seconds += 1.2 * _fit_seconds(ds, ratio, epochs)
    defense = c.get("defense")
    if defense:
        params = defense.get("params", {})
        holding = c["data"]["holding_rate"]
        if defense["name"] == "gcleaner":
            rounds = (
                int(params.get("restarts", 3)) * int(params.get("recovery_epochs", 20))
                + int(params.get("teacher_epochs", 30))
                + 2 * int(params.get("unlearn_epochs", 30))
            )
            seconds += 4 * _fit_seconds(ds, holding, rounds)
        elif (kind := _training_time(defense["name"])) is not None:  # trains its own model on the train set
            full = {**kind.param_defaults, **params}
            seconds += _fit_seconds(ds, ratio, kind.training_epochs(full, epochs))
        else:
            seconds += _fit_seconds(ds, holding, int(params.get("epochs", 30)))
    return seconds


def _training_time(name: str) -> Any:
    """The registered training-time defense class ``name`` (None for post-training or unknown names)."""
    from gnnsec.defenses import DEFENSES, TrainingDefense

    cls = DEFENSES.get(name) if name in DEFENSES else None
    return cls if isinstance(cls, type) and issubclass(cls, TrainingDefense) else None


def estimate(plan: Plan) -> dict[str, float]:
    """Estimated CPU-seconds per sub-sweep, counting each cached model once (in schedule order)."""
    out = dict.fromkeys(plan.order, 0.0)
    seen_clean: set[str] = set()
    seen_bd: set[str] = set()
    for t in schedule(plan.trials):
        new_clean = t.clean_key not in seen_clean
        new_bd = t.backdoor_key is not None and t.backdoor_key not in seen_bd
        seen_clean.add(t.clean_key)
        if t.backdoor_key:
            seen_bd.add(t.backdoor_key)
        out[t.subsweep] += trial_seconds(t, new_clean, new_bd)
    return out


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def dry_run_text(plan: Plan, args: argparse.Namespace) -> str:
    est = estimate(plan)
    counts = plan.counts()
    slots = _slots(args)
    lines = [f"preset {plan.preset}: {len(plan.trials)} trials in {len(plan.order)} sub-sweeps"]
    header = f"{'sub-sweep':<20} {'paper':<30} {'trials':>7} {'declared':>9} {'CPU time':>10}  note"
    lines += [header, "-" * len(header)]
    for name in plan.order:
        sub = grids.SUBSWEEPS[name]
        note = ""
        if name in plan.skipped:
            note = "skipped: " + plan.skipped[name]
        elif name in plan.dropped:
            note = "without " + "; ".join(", ".join(map(str, v)) for v in plan.dropped[name].values())
        lines.append(
            f"{name:<20} {sub.paper[:30]:<30} {counts.get(name, 0):>7} {plan.declared.get(name, 0):>9} "
            f"{_hms(est.get(name, 0.0)):>10}  {note}"
        )
    total = sum(est.values())
    lines.append("-" * len(header))
    lines.append(
        f"total {len(plan.trials)} trials, ~{_hms(total)} CPU time; wall ~{_hms(total / slots + 15)} with "
        f"{slots} concurrent trial(s) (rough: GIN cost model, cold artifact cache)"
    )
    return "\n".join(lines)


def _slots(args: argparse.Namespace) -> int:
    cpus = args.num_cpus or os.cpu_count() or 1
    slots = max(1, int(cpus // max(args.cpus_per_trial, 1e-9)))
    if args.max_concurrent:
        slots = min(slots, args.max_concurrent)
    return max(1, slots)
