#!/usr/bin/env python
"""Benchmark of the sweep platform: scheduling overhead and what the artifact cache saves.

Runs one preset (default ``smoke``) twice through ``sweeps/full.py`` on embedded Ray, with a fresh run
folder each time and the same artifact cache: first cold (empty cache), then warm (every clean and
backdoored model already built). For each run it records

- the driver's wall clock (process) and Ray Tune's tuning-loop time;
- the sum of the trials' own compute time (``trial_wall_seconds`` of every MLflow run) and the ideal
  wall time at the same concurrency (sum / concurrent slots), hence the scheduling overhead;
- the number of artifacts built (cache misses) and read (hits);

and the time the warm cache saves. Results: ``benchmarks/results/sweep.json``.

    python benchmarks/bench_sweep.py [--preset smoke] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT / "sweeps" / "full.py"


def run_sweep(preset: str, run_dir: Path, cache: Path, name: str, concurrency: int, extra: list[str]) -> dict:
    cmd = [
        sys.executable,
        str(FULL),
        "--preset",
        preset,
        "--run-dir",
        str(run_dir),
        "--cache-dir",
        str(cache),
    ]
    cmd += [
        "--name",
        name,
        "--max-concurrent",
        str(concurrency),
        "--num-cpus",
        str(concurrency),
        "--no-report",
    ]
    cmd += extra
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_ADDRESS"))}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"sweep failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    text = proc.stdout + proc.stderr
    match = re.search(r"Total run time: ([\d.]+) seconds \(([\d.]+) seconds for the tuning loop\)", text)
    loop = float(match.group(2)) if match else float("nan")

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{run_dir / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=[f"gnnsec/{name}"])
    trial_sum = float(runs["metrics.trial_wall_seconds"].sum())
    return {
        "trials": len(runs),
        "finished": int((runs["status"] == "FINISHED").sum()),
        "driver_wall_seconds": round(wall, 2),
        "tuning_loop_seconds": round(loop, 2),
        "sum_trial_seconds": round(trial_sum, 2),
        "ideal_wall_seconds": round(trial_sum / concurrency, 2),
        "scheduling_overhead_seconds": round(loop - trial_sum / concurrency, 2),
        "parallel_efficiency": round(trial_sum / (concurrency * loop), 3) if loop == loop else None,
        "cache_misses": int(runs["metrics.cache_misses"].sum()),
        "cache_hits": int(runs["metrics.cache_hits"].sum()),
        "max_trial_seconds": round(float(runs["metrics.trial_wall_seconds"].max()), 2),
        "sum_import_seconds": round(float(runs["metrics.trial_import_seconds"].sum()), 2),
        "trial_actors": int(runs["tags.gnnsec.worker_pid"].nunique()),
        "sum_ray_trial_seconds": round(float(runs["metrics.ray_time_total_s"].sum()), 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="smoke")
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sweep.json"))
    p.add_argument(
        "extra",
        nargs="*",
        default=["--datasets", "AIDS", "--set", "train.epochs=50"],
        help="sweeps/full.py flags after -- (default: --datasets AIDS --set train.epochs=50, so that "
        "training is a visible share of each trial)",
    )
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="gnnsec-bench-") as tmp:
        tmp_path = Path(tmp)
        cache = tmp_path / "artifacts"
        cold = run_sweep(args.preset, tmp_path / "cold", cache, "bench-cold", args.concurrency, args.extra)
        warm = run_sweep(args.preset, tmp_path / "warm", cache, "bench-warm", args.concurrency, args.extra)
    result = {
        "benchmark": "sweep",
        "preset": args.preset,
        "concurrency": args.concurrency,
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "note": (
            "cold = empty artifact cache, warm = same sweep again (every clean and backdoored model cached); "
            "ideal wall = sum of the trials' own compute / concurrency; overhead = tuning loop - ideal "
            "(actor start-up, imports per trial actor, result and MLflow logging on the driver)"
        ),
        "cold": cold,
        "warm": warm,
        "cache_saved_seconds": {
            "tuning_loop": round(cold["tuning_loop_seconds"] - warm["tuning_loop_seconds"], 2),
            "sum_trial": round(cold["sum_trial_seconds"] - warm["sum_trial_seconds"], 2),
        },
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
