"""CPU-time estimates of a plan (``--dry-run``): a cost model calibrated on measured trials
(:mod:`sweeps.cost_model`, ``benchmarks/bench_cost_model.py``) and the cache's build-once order."""

from __future__ import annotations

import argparse
import functools
import os
from typing import Any

from gnnsec.artifact_keys import is_training_defense
from sweeps import cost_model, grids
from sweeps.spec import Plan, TrialSpec, schedule

TRAIN_FRACTION = 0.8  # the calibration's epoch is over the 80% training split


@functools.cache
def cost() -> cost_model.CostModel:
    """The calibrated constants (:mod:`sweeps.cost_model`, from ``benchmarks/bench_cost_model.py``)."""
    return cost_model.load()


def _fit_seconds(
    dataset: str,
    graphs_fraction: float,
    epochs: float,
    model: str = "GIN",
    cm: cost_model.CostModel | None = None,
) -> float:
    return epochs * (cm or cost()).epoch(dataset, model) * graphs_fraction / TRAIN_FRACTION


def trial_seconds(
    t: TrialSpec, new_clean: bool, new_backdoor: bool, cm: cost_model.CostModel | None = None
) -> float:
    """Single-core CPU seconds of one trial (cold cache for the artifacts it is first to need)."""
    cm = cm or cost()
    c = t.config
    ds, ratio, epochs = c["data"]["dataset"], c["data"]["train_ratio"], c["train"]["epochs"]
    model = c["model"]["name"]
    seconds = cm.trial_overhead + cm.overhead_epochs * _fit_seconds(ds, ratio, 1, model, cm)
    if new_clean:
        seconds += _fit_seconds(ds, ratio, epochs, model, cm)
    if new_backdoor:
        a = c["attack"]["name"]
        work = cm.attack_fixed.get(a, 0.0) + cm.attack_factor.get(a, 1.2) * epochs
        seconds += _fit_seconds(ds, ratio, work, model, cm)
    unlearning = c.get("unlearning")
    if unlearning:
        seconds += cm.unlearner_factor.get(unlearning["name"], 1.0) * _fit_seconds(
            ds, ratio, epochs, model, cm
        )
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
            aux = _per_graph_ratio(defense.get("auxiliary_dataset"), ds)
            seconds += cm.gcleaner_factor * _fit_seconds(ds, holding, rounds, model, cm) * aux
        elif (kind := _training_time(defense["name"])) is not None:  # trains in place of the victim
            seconds += _fit_seconds(
                ds, ratio, _training_work(kind, defense["name"], params, epochs, cm), model, cm
            )
        elif defense["name"] in cm.defense_factor:  # calibrated (benchmarks/bench_cost_model.py)
            factor = cm.defense_factor[defense["name"]]
            seconds += factor * _fit_seconds(ds, holding, int(params.get("epochs", 30)), model, cm)
        else:
            seconds += _fit_seconds(ds, holding, int(params.get("epochs", 30)), model, cm)
    return seconds


def _per_graph_ratio(aux: str | None, dataset: str) -> float:
    """How much more a defense costs on as many graphs of the auxiliary dataset ``aux`` (GCleaner Table 5)
    than on the holding graphs of ``dataset``: the ratio of their mean node counts (GCleaner explains,
    triggers and unlearns its clean graphs in large chunks, where the work grows with the nodes; NCI1's
    graphs have ~1.9x AIDS' nodes; measured: an NCI1-auxiliary trial costs ~2x an AIDS one); 1 without."""
    sizes = grids.DATASET_SIZE
    if not aux or aux == dataset or aux not in sizes or dataset not in sizes:
        return 1.0
    return sizes[aux][1] / sizes[dataset][1]


def _training_time(name: str) -> Any:
    """The registered training-time defense class ``name`` (None for post-training or unknown names)."""
    from gnnsec.defenses import DEFENSES

    return DEFENSES.get(name) if name in DEFENSES and is_training_defense(name) else None


def _training_work(kind: Any, name: str, params: dict, epochs: int, cm: cost_model.CostModel) -> float:
    """Epoch-equivalents a training-time defense trains. Its own ``training_epochs`` (helper models,
    explanations, retraining at these settings); where the cost model measured the defense (at its
    default settings), the calibrated ``fixed + factor * epochs``, scaled by how much these settings'
    ``training_epochs`` differ from the defaults'."""
    nominal = kind.training_epochs({**kind.param_defaults, **params}, epochs)
    if name not in cm.defense_factor:
        return nominal
    default = kind.training_epochs(dict(kind.param_defaults), epochs) or 1.0
    return (cm.defense_fixed.get(name, 0.0) + cm.defense_factor[name] * epochs) * nominal / default


def estimate(plan: Plan, cm: cost_model.CostModel | None = None) -> dict[str, float]:
    """Estimated CPU-seconds per sub-sweep, counting each cached model once (in schedule order)."""
    out = dict.fromkeys(plan.order, 0.0)
    seen_clean: set[str] = set()
    seen_bd: set[str] = set()
    for t in schedule(plan.trials):
        new_clean = t.clean_key is not None and t.clean_key not in seen_clean
        new_bd = t.backdoor_key is not None and t.backdoor_key not in seen_bd
        if t.clean_key:
            seen_clean.add(t.clean_key)
        if t.backdoor_key:
            seen_bd.add(t.backdoor_key)
        out[t.subsweep] += trial_seconds(t, new_clean, new_bd, cm)
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
    models = plan.distinct_models()
    lines.append(
        f"distinct models to train (each once, shared through the artifact cache): {models['clean']} clean, "
        f"{models['backdoor']} backdoored, {models['defended']} training-time-defense, "
        f"{models['node_base']} node base"
        + (
            " (attack.clean_floor=false: clean models only where the attack needs one)"
            if _floor_off(plan)
            else ""
        )
    )
    lines.append(
        f"total {len(plan.trials)} trials, ~{_hms(total)} CPU time; wall ~{_hms(total / slots + 15)} with "
        f"{slots} concurrent trial(s) (cold artifact cache; cost model: {cost().source})"
    )
    gpu = sum(estimate(plan, cost_model.gpu_node(cost())).values())
    n_gpu = int(cost_model.GPU_ASSUMPTION["concurrent_trials"])
    lines.append(
        f"on a GPU node: ~{_hms(gpu)} trial time, wall ~{_hms(gpu / n_gpu + 15)} with {n_gpu} concurrent "
        f"trials ({cost_model.GPU_ASSUMPTION['text']})"
    )
    return "\n".join(lines)


def _floor_off(plan: Plan) -> bool:
    attacks = [t.config["attack"] for t in plan.trials if t.config.get("attack")]
    return bool(attacks) and not any(a.get("clean_floor", True) for a in attacks)


def _slots(args: argparse.Namespace) -> int:
    cpus = args.num_cpus or os.cpu_count() or 1
    slots = max(1, int(cpus // max(args.cpus_per_trial, 1e-9)))
    if args.max_concurrent:
        slots = min(slots, args.max_concurrent)
    return max(1, slots)
