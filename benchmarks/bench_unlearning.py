"""Benchmark: every unlearner's wall time against Retrain on the same graph, forget set and base model,
measured in one run on the same machine (target: every unlearner except Retrain faster than Retrain).

    .venv/bin/python benchmarks/bench_unlearning.py [--dataset CiteSeer --models GCN GAT --seed 0 --repeats 1]

The base model is trained once per backbone in this run (paper setting: 2 layers, 64 hidden, Adam 0.005,
100 epochs); each unlearner then runs on a copy of it (GraphEditor's training-time Gram inverse is timed
separately as ``prepare_seconds`` and not counted). Writes ``benchmarks/results/unlearning.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from gnnsec.cache import atomic_write_text
from gnnsec.config import TrialConfig
from gnnsec.data.nodes import load_node_data
from gnnsec.node_trial import PAPER_SETTINGS, forget_set, new_node_model
from gnnsec.train_nodes import fit_nodes, node_accuracy
from gnnsec.unlearning import UNLEARNERS, UnlearnRequest

OUT = Path(__file__).resolve().parent / "results" / "unlearning.json"
NAMES = ["retrain", "gnndelete", "grapheditor", "idea"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="CiteSeer")
    ap.add_argument("--models", nargs="+", default=["GCN", "GAT"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="runs per unlearner (the median is kept)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for model_name in args.models:
        flat = {
            **PAPER_SETTINGS,
            "data.dataset": args.dataset,
            "model.name": model_name,
            "train.seed": args.seed,
            "data.split_seed": args.seed,
        }
        cfg = TrialConfig().with_overrides(flat)
        data = load_node_data(cfg.data)
        base = new_node_model(cfg, data)
        t0 = time.perf_counter()
        fit_nodes(base, data.graph, cfg.train)
        base_seconds = time.perf_counter() - t0
        forget = forget_set(data.num_nodes, 0.05, args.seed)
        row: dict = {"model": model_name, "base_train_seconds": base_seconds, "unlearners": {}}
        for name in NAMES:
            times, prep, acc = [], [], float("nan")
            for _ in range(args.repeats):
                req = UnlearnRequest(
                    base,
                    data.graph,
                    forget,
                    lambda cfg=cfg, data=data: new_node_model(cfg, data),
                    cfg.train,
                    data.num_classes,
                )
                out = UNLEARNERS.get(name)({}).unlearn(req)
                times.append(out.seconds)
                prep.append(out.prepare_seconds)
                acc = node_accuracy(out.model, out.graph, out.graph.test_mask)
            times.sort()
            row["unlearners"][name] = {
                "seconds": times[len(times) // 2],
                "prepare_seconds": sorted(prep)[len(prep) // 2],
                "test_acc": acc,
            }
            print(
                f"{args.dataset} {model_name} {name}: {times[len(times) // 2]:.3f}s acc {acc:.3f}", flush=True
            )
        ref = row["unlearners"]["retrain"]["seconds"]
        for r in row["unlearners"].values():
            r["ratio_vs_retrain"] = r["seconds"] / ref
        row["all_faster_than_retrain"] = all(
            r["ratio_vs_retrain"] < 1.0 for n, r in row["unlearners"].items() if n != "retrain"
        )
        results.append(row)
    payload = {
        "benchmark": "unlearning time vs Retrain",
        "dataset": args.dataset,
        "seed": args.seed,
        "forget_ratio": 0.05,
        "repeats": args.repeats,
        "threads": args.threads,
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "results": results,
        "target_met": all(r["all_faster_than_retrain"] for r in results),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(payload, indent=1))
    print(
        json.dumps(
            {
                r["model"]: {n: round(u["ratio_vs_retrain"], 3) for n, u in r["unlearners"].items()}
                for r in results
            }
        )
    )


if __name__ == "__main__":
    main()
