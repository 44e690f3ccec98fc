"""Backdoor strength (no defense) against the attack's knobs: why Fingerprint/Bitcoin attacks are weaker
than GCleaner Table 3 "Before" (issue 8, item 5).

    python benchmarks/attack_strength.py --dataset Fingerprint --attacks sub_ba gta --seeds 0 \
        --grid attack.trigger_size=0.2,0.4,0.6 data.feature_mode=degree,native \
        --out benchmarks/results/attack_strength.jsonl

Every combination of the grid runs :func:`gnnsec.pipeline.run_trial` without a defense (GIN, default model
settings otherwise) and appends one JSON line: raw ASR, the clean-model floor, ACC, the trigger's node count
and the graph counts the rates are measured on.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from pathlib import Path

import yaml

from gnnsec.cache import ArtifactCache
from gnnsec.config import TrialConfig
from gnnsec.pipeline import run_trial

KEYS = ("backdoor_asr", "clean_asr", "backdoor_acc", "clean_acc", "trigger_nodes", "backdoor_asr_n", "n_test")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="Fingerprint")
    ap.add_argument("--attacks", nargs="+", default=["sub_ba", "gta", "exp_ba", "motif_ba"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--grid", nargs="*", default=[], metavar="KEY=V1,V2")
    ap.add_argument("--cache-dir")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/attack_strength.jsonl"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cache = ArtifactCache(Path(args.cache_dir)) if args.cache_dir else ArtifactCache()
    axes = [
        (k, [yaml.safe_load(v) for v in vs.split(",")]) for k, _, vs in (g.partition("=") for g in args.grid)
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for attack in args.attacks:
            for combo in itertools.product(*[vals for _, vals in axes]):
                flat = {
                    "data.dataset": args.dataset,
                    "data.split_seed": seed,
                    "model.name": "GIN",
                    "train.seed": seed,
                    "attack.name": attack,
                    "attack.seed": seed,
                    **{k: v for (k, _), v in zip(axes, combo, strict=True)},
                }
                m = run_trial(TrialConfig().with_overrides(flat), cache).metrics
                row = {**flat, **{k: m[k] for k in KEYS if k in m}}
                with args.out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                logging.info("%s", json.dumps(row))


if __name__ == "__main__":
    main()
