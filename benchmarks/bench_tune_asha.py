"""Benchmark: how much compute ASHA saves when tuning GCleaner, against running every trial to the end.

    python benchmarks/bench_tune_asha.py --trials 40 [--dataset AIDS --attack sub_ba --set train.epochs=20]

Runs ``sweeps/tune_gcleaner.py`` twice on the same backdoored model (built once in a shared artifact cache
before timing starts), one trial at a time, with the same TPE seed: once with ASHA (GCleaner reports its
defender-side objective live after every unlearning epoch and Ray ends a stopped trial's worker) and once
with FIFO (every trial runs all its epochs). Records wall-clock time, the reports (epochs) every trial
delivered (Optuna's intermediate values), and the best objective each study reached. Writes
``benchmarks/results/tune_asha.json``.
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


def study_stats(run_dir: Path, study: str) -> dict[str, float]:
    import optuna

    s = optuna.load_study(study_name=study, storage=f"sqlite:///{run_dir / 'optuna.db'}")
    reports = [len(t.intermediate_values) for t in s.trials]
    values = [t.value for t in s.trials if t.value is not None]
    return {
        "trials": len(s.trials),
        "reports_total": float(sum(reports)),
        "best_objective": max(values) if values else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--dataset", default="AIDS")
    ap.add_argument("--attack", default="sub_ba")
    ap.add_argument("--max-epochs", type=int, default=30)
    ap.add_argument("--grace", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    base = [
        sys.executable,
        str(ROOT / "sweeps" / "tune_gcleaner.py"),
        "--dataset",
        args.dataset,
        "--attack",
        args.attack,
        "--trials",
        str(args.trials),
        "--concurrency",
        "1",
        "--num-cpus",
        "1",
        "--max-epochs",
        str(args.max_epochs),
        "--grace",
        str(args.grace),
    ]
    for item in args.set:
        base += ["--set", item]
    result: dict = {"trials": args.trials, "dataset": args.dataset, "attack": args.attack, "set": args.set}
    with tempfile.TemporaryDirectory(prefix="gnnsec-asha-") as tmp:
        cache = Path(tmp) / "artifacts"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_ADDRESS"))}
        env.setdefault("OMP_NUM_THREADS", "1")
        warm = subprocess.run(  # build the backdoored model once, outside the timed runs
            [*base[:2], *base[2:6], "--trials", "1", "--concurrency", "1", "--num-cpus", "1"]
            + [
                "--max-epochs",
                "1",
                "--grace",
                "1",
                "--run-dir",
                str(Path(tmp) / "warm"),
                "--cache-dir",
                str(cache),
            ]
            + [a for item in args.set for a in ("--set", item)],
            env=env,
            capture_output=True,
            text=True,
        )
        if warm.returncode != 0:
            raise SystemExit(warm.stderr[-3000:])
        for scheduler in ("asha", "fifo"):
            run_dir = Path(tmp) / scheduler
            cmd = [*base, "--scheduler", scheduler, "--study", scheduler, "--run-dir", str(run_dir)]
            cmd += ["--cache-dir", str(cache), "--out", str(run_dir / "best.yaml")]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-3000:])
            result[scheduler] = {"wall_seconds": seconds, **study_stats(run_dir, scheduler)}
    a, f = result["asha"], result["fifo"]
    result["wall_saved_fraction"] = 1 - a["wall_seconds"] / f["wall_seconds"]
    result["reports_saved_fraction"] = 1 - a["reports_total"] / max(f["reports_total"], 1)
    result["machine"] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    result["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
