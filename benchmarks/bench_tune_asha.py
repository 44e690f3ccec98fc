"""Benchmark: how much compute ASHA saves when tuning GCleaner, against running every trial to the end.

    python benchmarks/bench_tune_asha.py --trials 40 --set model.hidden=32 --set train.epochs=20 \
        --set train.step_size=20 [--dataset AIDS --attack sub_ba --cache-dir /work/cache]

Runs ``sweeps/tune_gcleaner.py`` twice on the same backdoored model (built once in the artifact cache
before timing starts), one trial at a time, with the same search space and TPE seed: once with ASHA
(GCleaner reports its defender-side objective after every unlearning epoch and Ray ends a stopped trial's
worker there) and once with FIFO (every trial runs all its epochs). From every trial's Tune results it
records the unlearning epochs computed (one report each) against the epochs its setting asked for, the
CPU seconds of the trial's thread, whether it delivered its final report, and the best final objective
(the model GCleaner returned) each study reached; plus wall-clock time and the machine's load average.
Writes ``benchmarks/results/tune_asha.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "tune_asha.json"


def trial_rows(run_dir: Path) -> list[list[dict]]:
    """Every trial's Tune results (one row per report), in trial start order."""
    trials = []
    for path in (run_dir / "ray").glob("*/*/result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if rows:
            trials.append(rows)
    return sorted(trials, key=lambda rows: rows[0]["timestamp"] - rows[0]["time_total_s"])


def study_summary(run_dir: Path) -> dict:
    per_trial = []
    for rows in trial_rows(run_dir):
        final = [r for r in rows if r.get("final")]
        epochs = sum(1 for r in rows if not r.get("final"))  # one report per unlearning epoch
        planned = int(rows[0]["config"]["unlearn_epochs"])
        per_trial.append(
            {
                "unlearn_epochs": planned,
                "epochs_computed": epochs,
                "finished": bool(final),
                "stopped_early": not final,
                "returned_input": bool(final and final[-1].get("returned_input", 0) >= 1),
                "objective": rows[-1]["objective"],
                "cpu_seconds": rows[-1].get("cpu_seconds", float("nan")),
                "trial_seconds": rows[-1]["time_total_s"],
            }
        )
    finals = [t["objective"] for t in per_trial if t["finished"]]
    stopped = [t for t in per_trial if t["stopped_early"]]
    return {
        "trials": len(per_trial),
        "trials_stopped_early": len(stopped),
        "stopped_at_epochs": [t["epochs_computed"] for t in stopped],
        "stopped_planned_epochs": [t["unlearn_epochs"] for t in stopped],
        "trials_returned_input": sum(t["returned_input"] for t in per_trial),
        "unlearn_epochs_planned": sum(t["unlearn_epochs"] for t in per_trial),
        "unlearn_epochs_computed": sum(t["epochs_computed"] for t in per_trial),
        "cpu_seconds": sum(t["cpu_seconds"] for t in per_trial),
        "trial_seconds": sum(t["trial_seconds"] for t in per_trial),
        "best_objective": max(finals) if finals else float("nan"),
        "trials_at_best": sum(1 for v in finals if v >= max(finals) - 1e-9) if finals else 0,
        "per_trial": per_trial,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--dataset", default="AIDS")
    ap.add_argument("--attack", default="sub_ba")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-epochs", type=int, default=30)
    ap.add_argument("--grace", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--cache-dir", help="artifact cache (default: GNNSEC_CACHE_DIR or the user cache)")
    ap.add_argument("--schedulers", nargs="+", default=["asha", "fifo"], choices=["asha", "fifo"])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    sets = [a for item in args.set for a in ("--set", item)]
    base = [sys.executable, str(ROOT / "sweeps" / "tune_gcleaner.py"), "--dataset", args.dataset]
    base += ["--attack", args.attack, "--seed", str(args.seed), "--concurrency", "1", "--num-cpus", "1"]
    if args.cache_dir:
        base += ["--cache-dir", str(Path(args.cache_dir).resolve())]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_ADDRESS"))}
    env.setdefault("OMP_NUM_THREADS", "1")
    result: dict = {
        "trials": args.trials,
        "dataset": args.dataset,
        "attack": args.attack,
        "seed": args.seed,
        "set": args.set,
        "max_epochs": args.max_epochs,
        "grace": args.grace,
        "reduction_factor": 2,
        "concurrency": 1,
        "objective": "val_soft_acc + (val_trigger_prob_before - val_trigger_prob), sweeps/tune_gcleaner.py",
    }
    with tempfile.TemporaryDirectory(prefix="gnnsec-asha-") as tmp:
        warm = subprocess.run(  # build the backdoored model once, outside the timed runs
            [*base, "--trials", "1", "--max-epochs", "1", "--grace", "1", "--run-dir", f"{tmp}/warm", *sets],
            env=env,
            capture_output=True,
            text=True,
        )
        if warm.returncode != 0:
            raise SystemExit(warm.stderr[-3000:])
        for scheduler in args.schedulers:
            run_dir = Path(tmp) / scheduler
            cmd = [*base, "--trials", str(args.trials), "--max-epochs", str(args.max_epochs)]
            cmd += ["--grace", str(args.grace), "--scheduler", scheduler, "--study", scheduler]
            cmd += ["--run-dir", str(run_dir), "--out", str(run_dir / "best.yaml"), *sets]
            load0 = os.getloadavg()
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-3000:])
            result[scheduler] = {
                "wall_seconds": seconds,
                "load_avg_before": load0,
                "load_avg_after": os.getloadavg(),
                "best_line": next(
                    (line for line in proc.stdout.splitlines() if line.startswith("best objective")), ""
                ),
                **study_summary(run_dir),
            }
            print(scheduler, {k: v for k, v in result[scheduler].items() if k != "per_trial"}, flush=True)
    if "asha" in result and "fifo" in result:
        a, f = result["asha"], result["fifo"]
        result["saved_fraction"] = {
            key: 1 - a[key] / f[key] if f[key] else float("nan")
            for key in ("unlearn_epochs_computed", "cpu_seconds", "trial_seconds", "wall_seconds")
        }
        result["best_objective_gap"] = f["best_objective"] - a["best_objective"]
    result["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count()}
    result["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp_out, args.out)
    print(json.dumps({k: v for k, v in result.items() if k not in ("asha", "fifo")}, indent=2))


if __name__ == "__main__":
    main()
