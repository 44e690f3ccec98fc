"""Trace GCleaner's "do no harm" guard, epoch by epoch, on backdoored (and never-poisoned) models.

    python benchmarks/gcleaner_guard_trace.py --datasets AIDS Fingerprint --seeds 0 \
        --out benchmarks/results/gcleaner_guard_trace.jsonl

For every (dataset, attack, seed) it takes the backdoored GIN of the default configuration from the artifact
cache, runs GCleaner on the holding split (what the defender has) and records, per unlearning epoch, the
defender's signals (validation accuracy, flip rates of its recovered trigger, class balance), the guard's
decision and, on the evaluation side only, the test ASR/ACC of that epoch's student. The evaluation columns
are for diagnosis; the defense never reads them. ``--set defense.params.KEY=VALUE`` overrides settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.gcleaner_table3 import ATTACKS, config  # noqa: E402
from gnnsec.cache import ArtifactCache
from gnnsec.data.loading import load_graph_dataset
from gnnsec.defenses import DEFENSES, DefenderData
from gnnsec.defenses.gcleaner import defense as gdefense
from gnnsec.metrics import attack_success
from gnnsec.pipeline import EVAL_SALT, backdoored_model, clean_model
from gnnsec.train import evaluate, predict

_RECOVERY_MEMO: dict[tuple, Any] = {}
# settings that change recovery: variants that differ only elsewhere (unlearning, guard) reuse one recovery
_RECOVERY_KEYS = (
    "recovery",
    "n",
    "threshold",
    "similarity_on",
    "generator_hidden",
    "restarts",
    "class_weight",
)


def _memo_recover(key: tuple) -> Any:
    inner = gdefense.recover_by_size

    def recover(*a: Any, **kw: Any) -> Any:
        if key not in _RECOVERY_MEMO:
            _RECOVERY_MEMO[key] = inner(*a, **kw)
        return _RECOVERY_MEMO[key]

    return recover


def trace(dataset: str, attack_name: str, seed: int, sets: list[str], cache: ArtifactCache) -> dict[str, Any]:
    cfg = config(dataset, attack_name, seed, sets)
    rec_sets = tuple(x for x in sets if x.removeprefix("defense.params.").startswith(_RECOVERY_KEYS))
    rec_key = (dataset, attack_name, seed, rec_sets)
    ds = load_graph_dataset(cfg.data)
    split = ds.split(cfg.data)
    test = ds.subset(split.test)
    clean, _ = clean_model(cfg, ds, split, cache)
    attack, model, _ = backdoored_model(cfg, ds, split, cache, clean)
    assert cfg.attack is not None and cfg.defense is not None
    target = cfg.attack.target_label
    victims = [g for g in test if int(g.y) != target]
    labels = torch.tensor([int(g.y) for g in victims])
    attack.reseed(EVAL_SALT)
    triggered, _ = attack.inject_with_masks(victims)

    def evaluation(m: torch.nn.Module) -> dict[str, float]:
        asr = attack_success(m, triggered, target, predict(m, victims), labels)["asr"]
        return {"test_asr": asr, "test_acc": evaluate(m, test, ds.num_classes).acc}

    defense = DEFENSES.get("gcleaner")(cfg.defense)
    rows: list[dict[str, float]] = []
    student_ref: dict[str, Any] = {}
    inner = gdefense.unlearn

    def unlearn_spy(student, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        student_ref["student"] = student  # evaluation side only: test ASR/ACC of every epoch
        return inner(student, *a, **kw)

    def hook(epoch: int, row: dict[str, float]) -> bool:
        rows.append({**{k: float(v) for k, v in row.items()}, **evaluation(student_ref["student"])})
        return False

    defense.on_epoch = hook
    gdefense.unlearn = unlearn_spy
    inner_recover = gdefense.recover_by_size
    gdefense.recover_by_size = _memo_recover(rec_key)
    t0 = time.perf_counter()
    try:
        out = defense.defend(model, DefenderData(ds.subset(split.holding), ds.num_classes, ds.featurizer))
    finally:
        gdefense.unlearn = inner
        gdefense.recover_by_size = inner_recover
    res = {
        "dataset": dataset,
        "attack": attack_name,
        "seed": seed,
        "set": sets,
        "target": target,
        "n_holding": len(split.holding),
        "n_test_victims": len(victims),
        "seconds": time.perf_counter() - t0,
        "before": evaluation(model),
        "after": evaluation(out.model),
        "metrics": {k: float(v) for k, v in out.metrics.items()},
        "epochs": rows,
    }
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["AIDS", "Fingerprint"])
    ap.add_argument("--attacks", nargs="+", default=list(ATTACKS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="K=V,K=V",
        help="extra settings tried in turn on every cell (recovery is shared when only unlearning differs)",
    )
    ap.add_argument("--cache-dir")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/gcleaner_guard_trace.jsonl"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cache = ArtifactCache(Path(args.cache_dir)) if args.cache_dir else ArtifactCache()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for dataset in args.datasets:
            for attack in args.attacks:
                for variant in args.variant or [""]:
                    extra = [
                        f"defense.params.{kv}" if "." not in kv.split("=")[0] else kv
                        for kv in variant.split(",")
                        if kv
                    ]
                    res = trace(dataset, attack, seed, args.set + extra, cache)
                    with args.out.open("a") as fh:
                        fh.write(json.dumps(res) + "\n")
                    m = res["metrics"]
                    logging.info(
                        "%s %s s%d %s: before %s after %s believed %s class %s returned_input %s reason %s",
                        dataset,
                        attack,
                        seed,
                        variant,
                        res["before"],
                        res["after"],
                        m.get("backdoor_believed"),
                        m.get("believed_class"),
                        m.get("returned_input"),
                        m.get("unchanged_reason"),
                    )


if __name__ == "__main__":
    main()
