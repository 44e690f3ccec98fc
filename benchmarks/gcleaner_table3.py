"""GCleaner's Table 3 block (GIN) plus the "clean model given to the defense" check and detection accuracy.

    python benchmarks/gcleaner_table3.py --datasets AIDS Fingerprint Bitcoin --seeds 0 1 2 \
        --out benchmarks/results/gcleaner_table3.jsonl

Every (dataset, attack, seed) cell runs :func:`gnnsec.pipeline.run_trial` (backdoored model from the
artifact cache, the defense on the holding split, evaluation on the rest of the test split) and appends one
JSON line. With ``--clean-check`` it also gives the never-poisoned model of the same seed to the defense
(the defender's data is the same holding split) and records the test-accuracy change and whether the
defense flagged it. ``--summary`` prints mean ± std per cell next to the paper's values
(``../shared/reference/gcleaner_table3.csv``) from an existing JSONL file. Defense settings are the
package defaults unless ``--set defense.params.KEY=VALUE`` is given.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gnnsec.cache import ArtifactCache
from gnnsec.config import TrialConfig
from gnnsec.data.loading import load_graph_dataset
from gnnsec.defenses import DEFENSES, DefenderData
from gnnsec.pipeline import clean_model, run_trial
from gnnsec.train import evaluate
from sweeps.tuning import final_objective

ATTACKS = ("sub_ba", "gta", "exp_ba", "motif_ba")
PAPER_NAMES = {"sub_ba": "Sub-BA", "gta": "GTA", "exp_ba": "Exp-BA", "motif_ba": "Motif-BA"}
KEYS = (
    "backdoor_asr",
    "clean_asr",
    "defended_asr",
    "backdoor_acc",
    "defended_acc",
    "clean_acc",
    "recovery_asr",
    "defense_backdoor_believed",
    "defense_believed_class",
    "defense_returned_input",
    "defense_seconds",
    "n_holding",
    "n_test",
    "backdoor_asr_n",
    # per-stage cost (seconds; the training times are those of the cached build)
    "clean_train_seconds",
    "backdoor_train_seconds",
    "poison_seconds",
    "backdoor_cached",
    "trial_seconds",
)


def config(dataset: str, attack: str, seed: int, sets: list[str]) -> TrialConfig:
    flat: dict[str, Any] = {
        "data.dataset": dataset,
        "data.split_seed": seed,
        "model.name": "GIN",
        "train.seed": seed,
        "attack.name": attack,
        "attack.seed": seed,
        "defense.name": "gcleaner",
        "defense.seed": seed,
    }
    params: dict[str, Any] = {}
    for item in sets:
        key, _, value = item.partition("=")
        if key.startswith("defense.params."):
            params[key.removeprefix("defense.params.")] = yaml.safe_load(value)
        else:
            flat[key] = yaml.safe_load(value)
    if params:
        flat["defense.params"] = params
    return TrialConfig().with_overrides(flat)


def clean_check(cfg: TrialConfig, cache: ArtifactCache) -> dict[str, float]:
    """Give the never-poisoned model to the defense; test accuracy before/after and its verdict."""
    ds = load_graph_dataset(cfg.data)
    split = ds.split(cfg.data)
    evaluation = ds.subset(split.test)  # the holding split is already taken out of it
    model, _ = clean_model(cfg, ds, split, cache)
    assert cfg.defense is not None
    defense = DEFENSES.get(cfg.defense.name)(cfg.defense)
    t0 = time.perf_counter()
    outcome = defense.defend(model, DefenderData(ds.subset(split.holding), ds.num_classes, ds.featurizer))
    seconds = time.perf_counter() - t0
    before = evaluate(model, evaluation).acc
    after = evaluate(outcome.model, evaluation).acc
    return {
        "cleanmodel_acc_before": before,
        "cleanmodel_acc_after": after,
        "cleanmodel_acc_change": after - before,
        "cleanmodel_believed_backdoored": outcome.metrics.get("backdoor_believed", float("nan")),
        "cleanmodel_returned_input": outcome.metrics.get("returned_input", float("nan")),
        "cleanmodel_defense_seconds": seconds,
        **{f"cleanmodel_{k}": v for k, v in outcome.metrics.items() if k.startswith(("class", "detection"))},
    }


def run(args: argparse.Namespace) -> None:
    cache = ArtifactCache(Path(args.cache_dir)) if args.cache_dir else ArtifactCache()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done_clean: set[tuple[str, int]] = set()
    for seed in args.seeds:  # seed-major: an interrupted run still covers every dataset
        for dataset in args.datasets:
            for attack in args.attacks:
                cfg = config(dataset, attack, seed, args.set)
                t0, c0 = time.perf_counter(), time.process_time()
                m = run_trial(cfg, cache).metrics
                row: dict[str, Any] = {"dataset": dataset, "attack": attack, "seed": seed}
                row.update({k: m[k] for k in KEYS if k in m})
                row.update({k: v for k, v in m.items() if k.startswith("defense_class")})
                row.update({k: v for k, v in m.items() if k.startswith("defense_detection")})
                row["target"] = cfg.attack.target_label if cfg.attack else None
                # the development protocol's defender-only objective J of the returned model
                own = {k.removeprefix("defense_"): v for k, v in m.items() if k.startswith("defense_")}
                row["defense_objective"] = final_objective(own)
                if args.clean_check and (dataset, seed) not in done_clean:
                    row.update(clean_check(cfg, cache))
                    done_clean.add((dataset, seed))
                row["seconds"] = time.perf_counter() - t0
                row["cpu_seconds"] = time.process_time() - c0  # this process, every thread
                with args.out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                logging.info("%s", json.dumps(row))


def _ms(values: list[float]) -> str:
    v = [x for x in values if not math.isnan(x)]
    return f"{100 * np.mean(v):5.1f} ± {100 * np.std(v):4.1f}" if v else "  n/a"


def summary(path: Path, paper_csv: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    paper: dict[tuple[str, str], dict[str, str]] = {}
    if paper_csv.is_file():
        with paper_csv.open() as fh:
            for r in csv.DictReader(fh):
                paper[(r["dataset"], r["attack"], r["defense"])] = r  # type: ignore[index]
    lines = [
        "| dataset | attack | seeds | graphs (test / victims / holding) | raw ASR | floor | defended ASR | "
        "ACC before | ACC after | flagged right class | input returned | paper before ASR/ACC | "
        "paper GCleaner ASR/ACC |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    cells: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        cells.setdefault((r["dataset"], r["attack"]), []).append(r)
    right_all: list[float] = []
    for (ds, atk), rs in cells.items():
        right = [
            float(
                r.get("defense_backdoor_believed", 0) == 1 and r.get("defense_believed_class") == r["target"]
            )
            for r in rs
        ]
        right_all += right
        pb = paper.get((ds, PAPER_NAMES.get(atk, atk), "none"), {})
        pg = paper.get((ds, PAPER_NAMES.get(atk, atk), "gcleaner"), {})
        counts = "/".join(str(int(rs[0].get(k, -1))) for k in ("n_test", "backdoor_asr_n", "n_holding"))
        lines.append(
            f"| {ds} | {atk} | {','.join(str(r['seed']) for r in rs)} | {counts} | "
            f"{_ms([r['backdoor_asr'] for r in rs])} | "
            f"{_ms([r['clean_asr'] for r in rs])} | {_ms([r['defended_asr'] for r in rs])} | "
            f"{_ms([r['backdoor_acc'] for r in rs])} | {_ms([r['defended_acc'] for r in rs])} | "
            f"{sum(right):.0f}/{len(rs)} | {sum(r.get('defense_returned_input', 0) for r in rs):.0f}/{len(rs)} | "
            f"{pb.get('asr', '-')}/{pb.get('acc', '-')} | "
            f"{pg.get('asr', '-')}/{pg.get('acc', '-')} |"
        )
    clean_rows = [r for r in rows if "cleanmodel_acc_change" in r]
    if clean_rows:
        lines.append("")
        lines.append(
            "| dataset | seed | clean model ACC before | after | change | flagged | returned input |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        for r in clean_rows:
            lines.append(
                f"| {r['dataset']} | {r['seed']} | {100 * r['cleanmodel_acc_before']:.1f} | "
                f"{100 * r['cleanmodel_acc_after']:.1f} | {100 * r['cleanmodel_acc_change']:+.1f} | "
                f"{r['cleanmodel_believed_backdoored']} | {r['cleanmodel_returned_input']} |"
            )
    if rows:
        left = [float(r["cleanmodel_believed_backdoored"] == 0) for r in clean_rows]
        lines.append("")
        lines.append(
            f"Detection: backdoored models flagged with the right class {sum(right_all):.0f}/{len(right_all)}; "
            f"never-poisoned models left alone (not flagged) {sum(left):.0f}/{len(left)}."
        )
        gaps = [r["defended_asr"] - r["clean_asr"] for r in rows]
        within = [g <= 0.05 for g in gaps]
        drop = [r["backdoor_acc"] - r["defended_acc"] for r in rows]
        worse = [
            r["defended_asr"] > r["backdoor_asr"] and r["defended_acc"] < r["backdoor_acc"] for r in rows
        ]
        cell_gap = [np.mean([r["defended_asr"] - r["clean_asr"] for r in rs]) for rs in cells.values()]
        cell_drop = [np.mean([r["backdoor_acc"] - r["defended_acc"] for r in rs]) for rs in cells.values()]
        cell_worse = [
            np.mean([r["defended_asr"] for r in rs]) > np.mean([r["backdoor_asr"] for r in rs])
            and np.mean([r["defended_acc"] for r in rs]) < np.mean([r["backdoor_acc"] for r in rs])
            for rs in cells.values()
        ]
        lines.append(
            f"Targets over {len(cells)} cells (seed means): mean (defended ASR - floor) "
            f"{100 * np.mean(cell_gap):+.1f} points (target <= +5); cells within floor + 5: "
            f"{sum(g <= 0.05 for g in cell_gap)}/{len(cells)} (target >= 80%); cells losing more than 3 ACC "
            f"points: {sum(d > 0.03 for d in cell_drop)} (max {100 * max(cell_drop):.1f}; target 0); cells worse "
            f"on both ASR and ACC: {sum(cell_worse)} (target 0)."
        )
        lines.append(
            f"Targets over {len(rows)} runs: mean (defended ASR - floor) {100 * np.mean(gaps):+.1f} points "
            f"(target <= +5); runs within floor + 5: {sum(within)}/{len(rows)} (target >= 80%); "
            f"max ACC drop {100 * max(drop):.1f} points (target <= 3); runs worse on both: {sum(worse)}."
        )
    if rows:
        lines += [
            "",
            "| dataset | attack | seed | raw ASR | floor | defended ASR | ACC before | ACC after | "
            "verdict (class) | target | input returned |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in sorted(rows, key=lambda r: (r["dataset"], r["attack"], r["seed"])):
            lines.append(
                f"| {r['dataset']} | {r['attack']} | {r['seed']} | {100 * r['backdoor_asr']:.1f} | "
                f"{100 * r['clean_asr']:.1f} | {100 * r['defended_asr']:.1f} | {100 * r['backdoor_acc']:.1f} | "
                f"{100 * r['defended_acc']:.1f} | {r.get('defense_backdoor_believed', float('nan')):.0f} "
                f"({r.get('defense_believed_class', float('nan')):.0f}) | {r['target']} | "
                f"{r.get('defense_returned_input', float('nan')):.0f} |"
            )
    return "\n".join(lines)


def _paper_csv() -> Path:
    """``shared/reference/gcleaner_table3.csv`` next to the checkout (or next to its parent folder)."""
    here = Path(__file__).resolve()
    for root in here.parents[1:4]:
        path = root / "shared" / "reference" / "gcleaner_table3.csv"
        if path.is_file():
            return path
    return here.parents[2] / "shared" / "reference" / "gcleaner_table3.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["AIDS", "Fingerprint", "Bitcoin"])
    ap.add_argument("--attacks", nargs="+", default=list(ATTACKS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--clean-check", action="store_true")
    ap.add_argument("--cache-dir")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/gcleaner_table3.jsonl"))
    ap.add_argument("--summary", action="store_true", help="only print the table of an existing --out")
    ap.add_argument(
        "--paper",
        type=Path,
        default=_paper_csv(),
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not args.summary:
        run(args)
    print(summary(args.out, args.paper))


if __name__ == "__main__":
    main()
