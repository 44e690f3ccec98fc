"""Benchmark: calibrate ``--dry-run``'s cost model on measured trials, then check it on other trials.

    .venv/bin/python benchmarks/bench_cost_model.py [--datasets AIDS Fingerprint MUTAG NCI1 Bitcoin COLLAB]
        [--cal-epochs 10 --val-epochs 20 --per-subsweep 1 --seed 0]

Everything runs in this one process with one torch thread and a fresh artifact cache; times are CPU seconds
(``time.process_time``), so a loaded shared machine slows the run down but does not bias the numbers.
Cost of a run (2026-12-01, 2-core VM at load average ~11): about 9 CPU-minutes, 2 of them COLLAB's first
load and one epoch (``--datasets`` without COLLAB skips them), 29 minutes of wall time.

1. **Epoch costs** (the measured per-dataset input of the model): a few epochs of the default backbone
   (GIN 3 x 64, batch 32, the pipeline's ``fit``) over each dataset's training split; the other backbones
   relative to GIN on AIDS; one full-batch epoch of the node base model on Cora / CiteSeer.
2. **Calibration trials** on AIDS at ``--cal-epochs-low`` and ``--cal-epochs``: clean-only trials on AIDS and
   MUTAG give the per-trial overhead (a constant + a multiple of the dataset's epoch cost); each attack and
   each training-time defense at both epoch counts gives its fixed and per-epoch work (a line); GCleaner
   (per recovery/unlearning epoch over the holding set) and fine-tuning one trial each; node trials on Cora
   the unlearners' factors.
3. **Validation**: ``--per-subsweep`` trial(s) of every sub-sweep of the paper preset (seed ``--seed``,
   ``train.epochs = --val-epochs``, datasets small enough for a laptop: not COLLAB, whose epoch cost is
   measured in step 1 but whose trials are too long for this run), run cold in plan order; each trial's
   prediction by :func:`sweeps.estimate.trial_seconds` with the calibrated constants is compared with its
   measured CPU time (per trial, per sub-sweep and in total; target: within 30%).

Writes ``benchmarks/results/cost_model.json``: ``constants`` (read by :mod:`sweeps.cost_model`, hence by every
``--dry-run`` of this checkout), the measurements behind them, the validation rows and the paper preset's
estimate on this machine and on the stated GPU node.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import random
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from gnnsec import pipeline
from gnnsec.artifact_keys import is_training_defense
from gnnsec.cache import ArtifactCache, atomic_write_text
from gnnsec.config import TrialConfig
from gnnsec.data.loading import load_graph_dataset
from gnnsec.registry import ATTACKS, DEFENSES
from gnnsec.train import fit
from sweeps import cost_model, estimate, grids
from sweeps.spec import TrialSpec, expand

OUT = Path(__file__).resolve().parent / "results" / "cost_model.json"
EPOCHS_MEASURED = {"COLLAB": 1, "NCI1": 2}  # epochs timed per dataset (default 3)
SMALL = ("AIDS", "Fingerprint", "MUTAG", "Bitcoin", "NCI1", "PROTEINS", "Cora", "CiteSeer")
log = logging.getLogger("bench_cost_model")


def cpu() -> float:
    return time.process_time()


def timed_trial(raw: dict[str, Any], cache: ArtifactCache) -> tuple[float, dict[str, float]]:
    cfg = TrialConfig.from_dict(copy.deepcopy(raw))
    t0 = cpu()
    res = pipeline.run_trial(cfg, cache)
    return cpu() - t0, res.metrics


# ---- 1. epoch costs -------------------------------------------------------------------------------------
def epoch_seconds(dataset: str, model: str = "GIN", epochs: int | None = None) -> dict[str, float]:
    cfg = TrialConfig.from_dict({"data": {"dataset": dataset}, "model": {"name": model}})
    t0 = cpu()
    ds = load_graph_dataset(cfg.data)
    split = ds.split(cfg.data)
    load = cpu() - t0
    n = epochs or EPOCHS_MEASURED.get(dataset, 3)
    train = ds.subset(split.train)
    net = pipeline.new_model(cfg, ds)
    t0 = cpu()
    fit(net, train, cfg.with_overrides({"train.epochs": n}).train, desc=f"{dataset}-{model}")
    return {"epoch_seconds": (cpu() - t0) / n, "epochs_timed": n, "load_seconds": load, "graphs": len(train)}


def node_epoch_seconds(dataset: str, epochs: int = 100) -> float:
    from gnnsec.data.nodes import load_node_data
    from gnnsec.node_trial import PAPER_SETTINGS, new_node_model
    from gnnsec.train_nodes import fit_nodes

    flat = {**PAPER_SETTINGS, "data.dataset": dataset, "model.name": "GCN", "train.epochs": epochs}
    cfg = TrialConfig.from_dict({"data": {"dataset": dataset}, "unlearning": {"name": "retrain"}})
    cfg = cfg.with_overrides(flat)
    data = load_node_data(cfg.data)
    net = new_node_model(cfg, data)
    t0 = cpu()
    fit_nodes(net, data.graph, cfg.train)
    return (cpu() - t0) / epochs


# ---- 2. calibration -------------------------------------------------------------------------------------
def _line(lo: float, hi: float, e_lo: int, e_hi: int, overhead: float, e: float) -> tuple[float, float]:
    """(fixed, per-epoch) work in epochs of the dataset from trials at two epoch counts: t = o + (f + k E) e."""
    k = max(0.0, (hi - lo) / ((e_hi - e_lo) * e))
    f = max(0.0, (lo - overhead) / e - k * e_lo)
    return f, k


def calibrate(args: argparse.Namespace, epochs: dict[str, float], cache: ArtifactCache) -> dict[str, Any]:
    """Fit the constants on AIDS (and MUTAG for the overhead) from trials at two epoch counts."""
    lo, hi, e = args.cal_epochs_low, args.cal_epochs, epochs["AIDS"]
    rows: list[dict[str, Any]] = []

    def run(name: str, raw: dict[str, Any]) -> float:
        t, _ = timed_trial(raw, cache)
        rows.append({"trial": name, "cpu": t})
        log.info("calibration %s: %.1f s", name, t)
        return t

    def cfg(epochs_: int, dataset: str = "AIDS", **sections: Any) -> dict[str, Any]:
        return {"data": {"dataset": dataset}, "train": {"epochs": epochs_}, **sections}

    timed_trial(cfg(1, "MUTAG"), cache)  # warm-up (imports, first-call costs), not used
    # overhead o + p e_D from clean-only trials on AIDS and MUTAG: t - E e_D = o + p e_D
    y_aids = run(f"AIDS clean E={lo}", cfg(lo)) - lo * e
    y_mutag = run(f"MUTAG clean E={lo}", cfg(lo, "MUTAG")) - lo * epochs["MUTAG"]
    per_epoch = max(0.0, (y_aids - y_mutag) / (e - epochs["MUTAG"]))
    const = max(0.0, y_aids - per_epoch * e)
    overhead = const + per_epoch * e
    run(f"AIDS clean E={hi}", cfg(hi))  # so the attack trials at both epoch counts find their clean model
    attack_fixed: dict[str, float] = {}
    attack_factor: dict[str, float] = {}
    for attack in grids.ATTACKS4:
        if attack in ATTACKS:
            t_lo = run(f"{attack} E={lo}", cfg(lo, attack={"name": attack}))
            t_hi = run(f"{attack} E={hi}", cfg(hi, attack={"name": attack}))
            attack_fixed[attack], attack_factor[attack] = _line(t_lo, t_hi, lo, hi, overhead, e)
    holding = TrialConfig.from_dict(cfg(hi)).data.holding_rate
    defense_fixed: dict[str, float] = {}
    defense_factor: dict[str, float] = {}
    gcleaner_factor = 4.0
    for defense in dict.fromkeys((*grids.DEFENSES_T3, *grids.DETECTORS_T7)):
        if defense not in DEFENSES:
            continue
        sections = {"attack": {"name": "sub_ba"}, "defense": {"name": defense}}
        params = DEFENSES.get(defense).param_defaults
        if is_training_defense(defense):
            t_lo = run(f"sub_ba + {defense} E={lo}", cfg(lo, **sections))
            t_hi = run(f"sub_ba + {defense} E={hi}", cfg(hi, **sections))
            defense_fixed[defense], defense_factor[defense] = _line(t_lo, t_hi, lo, hi, overhead, e)
            continue
        spent = max(0.0, run(f"sub_ba + {defense} E={hi}", cfg(hi, **sections)) - overhead)
        if defense == "gcleaner":
            # the smaller of two runs: the process's first GCleaner run may pay one-time costs (first
            # explainer and double-backward calls) that the sweep's later GCleaner trials do not
            spent = min(
                spent, max(0.0, run(f"sub_ba + {defense} E={hi} (again)", cfg(hi, **sections)) - overhead)
            )
            rounds = (
                int(params.get("restarts", 3)) * int(params.get("recovery_epochs", 20))
                + int(params.get("teacher_epochs", 30))
                + 2 * int(params.get("unlearn_epochs", 30))
            )
            gcleaner_factor = spent / (rounds * e * holding / estimate.TRAIN_FRACTION)
        else:
            defense_factor[defense] = spent / (int(params.get("epochs", 30)) * e * holding / 0.8)
    unlearner_factor: dict[str, float] = {}
    if "Cora" in epochs:
        from gnnsec.node_trial import PAPER_SETTINGS

        node = TrialConfig.from_dict({"data": {"dataset": "Cora"}, "unlearning": {"name": "retrain"}})
        node = node.with_overrides({**PAPER_SETTINGS, "model.name": "GCN"}).to_dict()
        base = node["train"]["epochs"] * epochs["Cora"]
        for unlearner in grids.UNLEARNERS:
            raw = copy.deepcopy(node)
            raw["unlearning"]["name"] = unlearner
            t = run(f"Cora {unlearner}", raw)
            if unlearner == grids.UNLEARNERS[0]:  # the first also trains the base model
                t -= base
            unlearner_factor[unlearner] = max(0.0, t - (const + per_epoch * epochs["Cora"])) / base
    return {
        "trial_overhead": const,
        "overhead_epochs": per_epoch,
        "attack_fixed": attack_fixed,
        "attack_factor": attack_factor,
        "gcleaner_factor": gcleaner_factor,
        "defense_fixed": defense_fixed,
        "defense_factor": defense_factor,
        "unlearner_factor": unlearner_factor,
        "rows": rows,
    }


# ---- 3. validation --------------------------------------------------------------------------------------
def sample(args: argparse.Namespace) -> list[TrialSpec]:
    plan = expand(
        grids.SUBSWEEPS,
        grids.DEFAULTS,
        grids.PRESETS["paper"],
        seeds=[args.seed],
        sets={"train.epochs": args.val_epochs},
    )
    rng = random.Random(args.seed)
    chosen: list[TrialSpec] = []
    for name in plan.order:
        ok = [
            t
            for t in plan.trials
            if t.subsweep == name
            and t.config["data"]["dataset"] in SMALL
            and ((t.config.get("defense") or {}).get("auxiliary_dataset") in (None, *SMALL))
        ]
        if name == "unlearning":  # node trials keep the paper's 100 full-batch epochs (cheap)
            ok = [t for t in ok if t.config["data"]["dataset"] == "Cora"]
            for t in ok:
                t.config["train"]["epochs"] = 100
        chosen += rng.sample(ok, min(args.per_subsweep, len(ok)))
    return chosen


def validate(trials: list[TrialSpec], cm: cost_model.CostModel, cache: ArtifactCache) -> list[dict[str, Any]]:
    seen: set[str] = set()
    rows = []
    for t in trials:
        new_clean = bool(t.clean_key) and t.clean_key not in seen
        new_bd = bool(t.backdoor_key) and t.backdoor_key not in seen
        predicted = estimate.trial_seconds(t, new_clean, new_bd, cm)
        try:
            measured, _ = timed_trial(t.config, cache)
        except Exception as exc:  # one failing trial must not cost the calibration: recorded, left out
            log.exception("validation trial %s failed", t.name)
            rows.append({"subsweep": t.subsweep, "trial": t.name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        seen.update(k for k in (t.clean_key, t.backdoor_key) if k)
        rows.append(
            {
                "subsweep": t.subsweep,
                "trial": t.name,
                "new_clean": new_clean,
                "new_backdoor": new_bd,
                "predicted": predicted,
                "measured": measured,
                "ratio": predicted / measured,
            }
        )
        log.info("%s: predicted %.1f s, measured %.1f s", t.name, predicted, measured)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--datasets", nargs="+", default=["AIDS", "Fingerprint", "MUTAG", "NCI1", "Bitcoin", "COLLAB"]
    )
    ap.add_argument("--node-datasets", nargs="*", default=["Cora", "CiteSeer"])
    ap.add_argument("--cal-epochs", type=int, default=10, help="training epochs of the calibration trials")
    ap.add_argument("--cal-epochs-low", type=int, default=2, help="the second, low epoch count of the fits")
    ap.add_argument("--val-epochs", type=int, default=20, help="training epochs of the validation trials")
    ap.add_argument("--per-subsweep", type=int, default=1, help="validation trials per sub-sweep")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    started = time.time()

    measured: dict[str, dict[str, float]] = {}
    for ds in dict.fromkeys(["AIDS", *args.datasets]):
        measured[ds] = epoch_seconds(ds)
        log.info("%s: %.3f s per epoch (%s)", ds, measured[ds]["epoch_seconds"], measured[ds])
    epochs = {d: v["epoch_seconds"] for d, v in measured.items()}
    model_factor = {"GIN": 1.0}
    for model in grids.BACKBONES:
        if model != "GIN":
            model_factor[model] = epoch_seconds("AIDS", model, 2)["epoch_seconds"] / epochs["AIDS"]
    for ds in args.node_datasets:
        epochs[ds] = node_epoch_seconds(ds)
        log.info("%s: %.4f s per full-batch epoch", ds, epochs[ds])

    with tempfile.TemporaryDirectory(prefix="gnnsec-costmodel-") as tmp:
        cal = calibrate(args, epochs, ArtifactCache(Path(tmp) / "cal"))
        constants = {
            "epoch_seconds": epochs,
            "model_factor": model_factor,
            **{k: v for k, v in cal.items() if k != "rows"},
        }
        cm = cost_model.CostModel(**constants, source="this calibration")
        rows = validate(sample(args), cm, ArtifactCache(Path(tmp) / "val"))

    failed = [r for r in rows if "error" in r]
    rows = [r for r in rows if "error" not in r]
    pred, meas = sum(r["predicted"] for r in rows), sum(r["measured"] for r in rows)
    per_sub: dict[str, dict[str, float]] = {}
    for r in rows:
        s = per_sub.setdefault(r["subsweep"], {"predicted": 0.0, "measured": 0.0})
        s["predicted"] += r["predicted"]
        s["measured"] += r["measured"]
    for s in per_sub.values():
        s["ratio"] = s["predicted"] / s["measured"]
    paper = expand(grids.SUBSWEEPS, grids.DEFAULTS, grids.PRESETS["paper"])
    here = estimate.estimate(paper, cm)
    gpu = estimate.estimate(paper, cost_model.gpu_node(cm))
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_at_end": os.getloadavg(),
        },
        "settings": vars(args) | {"out": str(args.out)},
        "constants": constants,
        "epoch_measurements": measured,
        "calibration_trials": cal["rows"],
        "validation": rows,
        "validation_failed": failed,
        "validation_summary": {
            "trials": len(rows),
            "predicted_cpu_seconds": pred,
            "measured_cpu_seconds": meas,
            "total_ratio": pred / meas if meas else None,
            "within_30pct_trials": sum(abs(r["ratio"] - 1) <= 0.3 for r in rows),
            "per_subsweep": per_sub,
        },
        "paper_preset_estimate": {
            "trials": len(paper.trials),
            "cpu_hours_this_machine": sum(here.values()) / 3600,
            "per_subsweep_cpu_hours": {k: v / 3600 for k, v in here.items()},
            "gpu_node_trial_hours": sum(gpu.values()) / 3600,
            "gpu_node_wall_hours": sum(gpu.values()) / 3600 / cost_model.GPU_ASSUMPTION["concurrent_trials"],
            "gpu_assumption": cost_model.GPU_ASSUMPTION["text"],
            "distinct_models": paper.distinct_models(),
        },
        "run_seconds": time.time() - started,
        "run_cpu_seconds": time.process_time(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["validation_summary"] | {"paper": result["paper_preset_estimate"]}, indent=1))


if __name__ == "__main__":
    main()
