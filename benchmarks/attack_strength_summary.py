"""Before/after table of the attacks' raw strength (issue 8, item 5): mean ± std over seeds of raw ASR,
clean-model floor and backdoored ACC, and, after, the ASR over the test graphs that injection changed.

    python benchmarks/attack_strength_summary.py \
        --before benchmarks/results/gcleaner_table3_final.jsonl \
        --after benchmarks/results/attack_strength_after.jsonl \
        --out benchmarks/results/attack_strength_summary.md

``--before`` rows use the keys of ``gcleaner_table3.py`` (dataset, attack, seed), ``--after`` rows those of
``attack_strength.py`` (data.dataset, attack.name, attack.seed); rows with extra grid keys
(``attack.params.*``, ...) are left out of the table. Paper values: ``gcleaner_table3.csv`` ("none").
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

PAPER_NAMES = {"sub_ba": "Sub-BA", "gta": "GTA", "exp_ba": "Exp-BA", "motif_ba": "Motif-BA"}
BASE_KEYS = {"data.dataset", "data.split_seed", "model.name", "train.seed", "attack.name", "attack.seed"}


def load(path: Path, after: bool) -> dict[tuple[str, str], dict[int, dict]]:
    rows: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if after:
            if any(k.startswith(("data.", "model.", "train.", "attack.")) and k not in BASE_KEYS for k in r):
                continue
            rows[(r["data.dataset"], r["attack.name"])][int(r["attack.seed"])] = r
        else:
            rows[(r["dataset"], r["attack"])][int(r["seed"])] = r
    return rows


def stat(rows: dict[int, dict], key: str) -> str:
    vals = [100 * float(r[key]) for r in rows.values() if key in r]
    return f"{np.mean(vals):5.1f} ± {np.std(vals):4.1f}" if vals else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--after", type=Path, required=True)
    ap.add_argument("--paper", type=Path, default=Path("../shared/reference/gcleaner_table3.csv"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    before, after = load(args.before, False), load(args.after, True)
    paper = {}
    if args.paper.is_file():
        with args.paper.open() as fh:
            paper = {(r["dataset"], r["attack"]): r for r in csv.DictReader(fh) if r["defense"] == "none"}
    lines = [
        "| dataset | attack | seeds before / after | raw ASR before | after | floor before | after "
        "| ACC before | after | test graphs changed by injection (after) | ASR over changed graphs (after) "
        "| paper ASR / ACC |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(set(before) | set(after), key=lambda k: (k[0], list(PAPER_NAMES).index(k[1]))):
        b, a = before.get(key, {}), after.get(key, {})
        p = paper.get((key[0], PAPER_NAMES.get(key[1], key[1])))
        lines.append(
            f"| {key[0]} | {key[1]} | {','.join(map(str, sorted(b)))} / {','.join(map(str, sorted(a)))} "
            f"| {stat(b, 'backdoor_asr')} | {stat(a, 'backdoor_asr')} | {stat(b, 'clean_asr')} "
            f"| {stat(a, 'clean_asr')} | {stat(b, 'backdoor_acc')} | {stat(a, 'backdoor_acc')} "
            f"| {stat(a, 'injected_frac')} | {stat(a, 'backdoor_asr_injected')} "
            f"| {p['asr'] + ' / ' + p['acc'] if p else '-'} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
