"""Compare two GCleaner settings by the development protocol's defender-only objective J, cell by cell.

    python benchmarks/gcleaner_guard_trace.py --datasets AIDS Fingerprint --seeds 0 1 2 \
        --set defense.params.guard_folds=0 --out runs/trace_single.jsonl
    python benchmarks/gcleaner_guard_trace.py --datasets AIDS Fingerprint --seeds 0 1 2 \
        --out runs/trace_crossfit.jsonl
    python benchmarks/gcleaner_objective_compare.py runs/trace_single.jsonl runs/trace_crossfit.jsonl

J of the returned model (``sweeps.tuning.final_objective``: soft accuracy + drop of the recovered trigger's
probability, on the defender's own clean graphs) and its gain over the input model's J measured on the same
graphs (the input model returned = gain 0), so that settings which judge on different graph sets compare
fairly. The decision reads only these columns; the test ASR/ACC columns are printed for diagnosis.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sweeps.tuning import final_objective


def load(path: Path, variant: str = "") -> dict[tuple, dict]:
    """Rows of a trace file whose ``--set``/``--variant`` settings are exactly ``variant`` ("k=v,k=v")."""
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {
        (r["dataset"], r["attack"], r["seed"]): r
        for r in rows
        if ",".join(x.removeprefix("defense.params.") for x in r["set"]) == variant
    }


def gain(metrics: dict[str, float]) -> float:
    j = final_objective(metrics)
    return float("nan") if j is None else j - metrics["val_soft_acc_before"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="trace JSONL of setting A")
    ap.add_argument("b", type=Path, help="trace JSONL of setting B")
    ap.add_argument("--variant-a", default="", help="settings of A's rows, e.g. guard_folds=0")
    ap.add_argument("--variant-b", default="", help="settings of B's rows, e.g. n=3,teacher_epochs=0")
    args = ap.parse_args()
    a, b = load(args.a, args.variant_a), load(args.b, args.variant_b)
    keys = sorted(k for k in a if k in b)
    print("| cell | J A | J B | gain A | gain B | test ASR A / B (diagnosis) | test ACC A / B / input |")
    print("|---|---|---|---|---|---|---|")
    for k in keys:
        ma, mb = a[k]["metrics"], b[k]["metrics"]
        print(
            f"| {' '.join(map(str, k))} | {final_objective(ma):.3f} | {final_objective(mb):.3f} | "
            f"{gain(ma):+.3f} | {gain(mb):+.3f} | {100 * a[k]['after']['test_asr']:.1f} / "
            f"{100 * b[k]['after']['test_asr']:.1f} | {100 * a[k]['after']['test_acc']:.1f} / "
            f"{100 * b[k]['after']['test_acc']:.1f} / {100 * a[k]['before']['test_acc']:.1f} |"
        )
    for ds in sorted({k[0] for k in keys}) + ["all"]:
        sel = [k for k in keys if ds in ("all", k[0])]
        ja = sum(final_objective(a[k]["metrics"]) for k in sel) / len(sel)
        jb = sum(final_objective(b[k]["metrics"]) for k in sel) / len(sel)
        ga = sum(gain(a[k]["metrics"]) for k in sel) / len(sel)
        gb = sum(gain(b[k]["metrics"]) for k in sel) / len(sel)
        print(f"{ds}: {len(sel)} cells, mean J A {ja:.4f} B {jb:.4f}; mean gain A {ga:+.4f} B {gb:+.4f}")


if __name__ == "__main__":
    main()
