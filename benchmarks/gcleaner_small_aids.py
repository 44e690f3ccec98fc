"""GCleaner on the end-to-end test's small AIDS models (hidden 32, 20 epochs, Sub-BA, seeds 0-2), with the
pooled per-epoch signals of every cross-fitted learning-rate attempt (defender side) next to the test ASR/ACC
of the returned model (evaluation side, for diagnosis only).

    python benchmarks/gcleaner_small_aids.py --tag native --out runs/small_native.jsonl \
        --variant guard_folds=5 --variant guard_folds=0
    ATEN_CPU_CAPABILITY=default python benchmarks/gcleaner_small_aids.py --tag default ...

Models are cached under ``--cache-root/<tag>`` (they differ between CPU paths: one cache per path).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import yaml

from gnnsec.cache import ArtifactCache
from gnnsec.defenses.gcleaner import crossfit
from gnnsec.pipeline import run_trial
from tests.conftest import aids_small_config

SHOWN = (
    "backdoor_asr",
    "clean_asr",
    "defended_asr",
    "backdoor_acc",
    "defended_acc",
    "defense_returned_input",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tag", required=True, help="names the model cache, e.g. the CPU path")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--variant", action="append", default=[], metavar="K=V,K=V")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--cache-root", type=Path, default=Path(".gnnsec"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tmp = args.cache_root / f"small_{args.tag}"
    cache = ArtifactCache(tmp / "artifacts")
    attempts: list[dict[str, Any]] = []
    inner = crossfit.crossfit_rows

    def spy(*a: Any, **kw: Any) -> list[dict[str, float]]:
        rows = inner(*a, **kw)
        attempts.append({"lr": a[6].lr, "rows": [dict(r) for r in rows]})
        return rows

    crossfit.crossfit_rows = spy
    for seed in args.seeds:
        for var in args.variant or [""]:
            params = {k: yaml.safe_load(v) for k, v in (kv.split("=") for kv in var.split(",") if kv)}
            attempts.clear()
            t0 = time.time()
            m = dict(run_trial(aids_small_config(tmp, "sub_ba", seed, params), cache).metrics)
            res = {
                "tag": args.tag,
                "seed": seed,
                "variant": var,
                "seconds": time.time() - t0,
                "metrics": {k: float(v) for k, v in m.items() if isinstance(v, int | float)},
                "attempts": list(attempts),
            }
            with args.out.open("a") as fh:
                fh.write(json.dumps(res) + "\n")
            print(args.tag, seed, var, {k: round(float(m[k]), 4) for k in SHOWN if k in m}, flush=True)


if __name__ == "__main__":
    main()
