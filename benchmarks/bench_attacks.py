"""Benchmark the backdoor attacks: poisoning time, backdoored-training time and injection throughput.

For every dataset the clean model is trained once (Exp-BA and Motif-BA use it); then, per attack, the
benchmark times ``prepare`` + victim selection + ``poison`` (poisoning), ``train_backdoored`` (backdoored
training, GTA's bi-level loop included) and ``inject`` on a batch of ``--inject-graphs`` non-target test
graphs (cycled when the test split has fewer; graphs/s), and reports the attack success rate on the
distinct test graphs as a sanity check. Nothing is read from the artifact cache, so the timings are real
work. Results are written atomically as JSON and printed as a table.

    .venv/bin/python benchmarks/bench_attacks.py --datasets AIDS --attacks sub_ba gta exp_ba motif_ba \\
        --out benchmarks/results/attacks.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import torch

from gnnsec.attacks import ATTACKS, AttackContext
from gnnsec.cache import atomic_write_text
from gnnsec.config import AttackConfig, TrialConfig
from gnnsec.data.loading import load_graph_dataset
from gnnsec.metrics import attack_success
from gnnsec.pipeline import EVAL_SALT, POISON_SALT, new_model
from gnnsec.train import evaluate, fit

log = logging.getLogger("bench_attacks")
COLUMNS = [
    "dataset",
    "attack",
    "feature_mode",
    "epochs",
    "clean_train_s",
    "poison_s",
    "backdoor_train_s",
    "inject_graphs",
    "inject_s",
    "inject_graphs_per_s",
    "clean_acc",
    "backdoor_acc",
    "asr",
]


def bench_dataset(dataset: str, attacks: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    cfg = TrialConfig.from_dict(
        {
            "data": {"dataset": dataset, "feature_mode": args.feature_mode, "split_seed": args.seed},
            "model": {"name": args.model},
            "train": {"epochs": args.epochs, "seed": args.seed},
        }
    )
    ds = load_graph_dataset(cfg.data)
    split = ds.split(cfg.data)
    train, test = ds.subset(split.train), ds.subset(split.test)
    t0 = time.perf_counter()
    clean = new_model(cfg, ds)
    fit(clean, train, cfg.train, desc="clean")
    clean_s = time.perf_counter() - t0
    clean.eval()
    clean_acc = evaluate(clean, test).acc
    rows = []
    for name in attacks:
        acfg = AttackConfig(name=name, seed=args.seed)
        target = acfg.target_label
        pool = [g for g in test if int(g.y) != target]
        victims_test = (pool * (args.inject_graphs // len(pool) + 1))[: args.inject_graphs]
        attack = ATTACKS.get(name)(acfg, ds.featurizer, ds.num_classes, ds.avg_nodes)
        ctx = AttackContext(
            train, ds.featurizer, ds.num_classes, ds.avg_nodes, lambda: new_model(cfg, ds), cfg.train, clean
        )
        t0 = time.perf_counter()
        attack.reseed(POISON_SALT)
        attack.prepare(ctx)
        victims = attack.select_victims(train)
        poisoned = attack.poison(train, victims)
        poison_s = time.perf_counter() - t0
        model = new_model(cfg, ds)
        t0 = time.perf_counter()
        attack.train_backdoored(model, poisoned, ctx, victims)
        train_s = time.perf_counter() - t0
        model.eval()
        attack.reseed(EVAL_SALT)
        t0 = time.perf_counter()
        triggered = attack.inject(victims_test)
        inject_s = time.perf_counter() - t0
        row = {
            "dataset": ds.name,
            "attack": name,
            "feature_mode": args.feature_mode,
            "model": args.model,
            "epochs": args.epochs,
            "seed": args.seed,
            "trigger_nodes": attack.trigger_nodes,
            "n_poisoned": len(victims),
            "clean_train_s": clean_s,
            "poison_s": poison_s,
            "backdoor_train_s": train_s,
            "inject_graphs": len(victims_test),
            "inject_s": inject_s,
            "inject_graphs_per_s": len(victims_test) / max(inject_s, 1e-9),
            "clean_acc": clean_acc,
            "backdoor_acc": evaluate(model, test).acc,
            "asr": attack_success(model, triggered[: len(pool)], target)["asr"],
        }
        log.info("%s", row)
        rows.append(row)
    return rows


def fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def table(rows: list[dict[str, Any]]) -> str:
    widths = {c: max(len(c), *(len(fmt(r[c])) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
    lines += ["  ".join(fmt(r[c]).ljust(widths[c]) for c in COLUMNS) for r in rows]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["AIDS"])
    p.add_argument("--attacks", nargs="+", default=ATTACKS.names())
    p.add_argument("--model", default="GIN")
    p.add_argument("--feature-mode", default="degree", choices=["degree", "native"])
    p.add_argument("--epochs", type=int, default=100, help="training epochs (clean and backdoored)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--inject-graphs",
        type=int,
        default=256,
        help="graphs in the injection batch (non-target test graphs, cycled)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--out", default="benchmarks/results/attacks.json")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    for dataset in args.datasets:
        rows.extend(bench_dataset(dataset, args.attacks, args))
    out = Path(args.out)
    payload = {
        "benchmark": "attacks",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "torch": torch.__version__,
        "threads": args.threads,
        "machine": platform.machine(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "args": vars(args),
        "results": rows,
    }
    atomic_write_text(out, json.dumps(payload, indent=1))
    print(table(rows))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
