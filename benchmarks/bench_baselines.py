"""Benchmark: run time of each baseline defense next to GCleaner's, for the same backdoored model.

    .venv/bin/python benchmarks/bench_baselines.py [--dataset AIDS --attack sub_ba --seed 0 --epochs N]

One fresh temporary artifact cache: the clean and backdoored models are trained once (the first trial), then
every defense runs against that same backdoored model / poisoned training set. Post-training defenses
(GCleaner, fine-tuning) are timed on the backdoored model; training-time defenses (ABL, Prune, Smoothing,
ED, XGBD) train their own model on the poisoned set, so their time is set beside the victim's own training
time (``backdoor_train_seconds``). Wall and process CPU seconds are both recorded (the machine is shared).
Writes ``benchmarks/results/baselines.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from gnnsec.cache import ArtifactCache, atomic_write_text
from gnnsec.config import TrialConfig
from gnnsec.pipeline import run_trial

OUT = Path(__file__).resolve().parent / "results" / "baselines.json"
DEFENSES = ("gcleaner", "finetune", "abl", "prune", "smoothing", "ed", "xgbd")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="AIDS")
    ap.add_argument("--model", default="GIN")
    ap.add_argument("--attack", default="sub_ba")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the dataset's)")
    ap.add_argument("--defenses", nargs="+", default=list(DEFENSES))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    rows = {}
    with tempfile.TemporaryDirectory(prefix="gnnsec-bench-") as tmp:
        cache = ArtifactCache(Path(tmp) / "artifacts")
        for name in args.defenses:
            cfg = TrialConfig.seeded_cell(
                args.dataset,
                args.attack,
                args.seed,
                model=args.model,
                defense=name,
                train__epochs=args.epochs,
            )
            cpu0, t0 = time.process_time(), time.perf_counter()
            m = run_trial(cfg, cache).metrics
            rows[name] = {
                "defense_seconds": m["defense_seconds"],
                "trial_wall_seconds": time.perf_counter() - t0,
                "trial_cpu_seconds": time.process_time() - cpu0,
                "backdoor_cached": m["backdoor_cached"],
                "defended_acc": m["defended_acc"],
                "defended_asr": m["defended_asr"],
            }
            print(
                f"{name:<10} {m['defense_seconds']:8.1f} s  ASR {m['defended_asr']:.3f}  ACC {m['defended_acc']:.3f}"
            )
    base = rows[args.defenses[0]]
    result = {
        "what": "defense run time per baseline vs GCleaner, same backdoored model (one fresh cache, one run)",
        "setting": {k: getattr(args, k) for k in ("dataset", "model", "attack", "seed", "epochs")},
        "backdoor_train_seconds": m["backdoor_train_seconds"],
        "backdoor_asr": m["backdoor_asr"],
        "backdoor_acc": m["backdoor_acc"],
        "defenses": rows,
        "gcleaner_ratio": {
            k: v["defense_seconds"] / rows["gcleaner"]["defense_seconds"] for k, v in rows.items()
        }
        if "gcleaner" in rows
        else {},
        "first_trial_trained_models": base["backdoor_cached"] == 0.0,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["gcleaner_ratio"], indent=2))


if __name__ == "__main__":
    main()
