"""GCleaner Table 3 from tracked runs: dataset x attack, ASR/ACC before and after each defense.

"Before" is the backdoored model (``backdoor_asr``/``backdoor_acc``, one value per backdoored model and
seed, however many defenses reused it); "after" is ``defended_asr``/``defended_acc`` per defense. Cells are
mean ± std over seeds in percent, as in the paper, with the number of seeds and of test graphs behind each
rate; the paper's numbers (``gcleaner_table3.csv``) sit next to ours when available.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

ATTACK_LABELS = {"sub_ba": "Sub-BA", "gta": "GTA", "exp_ba": "Exp-BA", "motif_ba": "Motif-BA"}
DEFENSE_ORDER = ["none", "abl", "prune", "smoothing", "finetune", "gcleaner"]
KEYS = {
    "dataset": "params.data.dataset",
    "attack": "params.attack.name",
    "defense": "params.defense.name",
    "seed": "params.train.seed",
}


def reference_dir() -> Path | None:
    """``$GNNSEC_REFERENCE_DIR``, else ``<checkout>/../shared/reference`` when it exists."""
    env = os.environ.get("GNNSEC_REFERENCE_DIR")
    if env:
        return Path(env)
    default = Path(__file__).resolve().parents[3] / "shared" / "reference"
    return default if default.is_dir() else None


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df else pd.Series(float("nan"), index=df.index)


def _summary(df: pd.DataFrame, prefix: str) -> dict[str, float]:
    asr = 100 * _col(df, f"metrics.{prefix}_asr").astype(float)
    acc = 100 * _col(df, f"metrics.{prefix}_acc").astype(float)
    return {
        "asr_mean": asr.mean(),
        "asr_std": asr.std(ddof=0) if len(df) > 1 else 0.0,
        "acc_mean": acc.mean(),
        "acc_std": acc.std(ddof=0) if len(df) > 1 else 0.0,
        "seeds": int(df[KEYS["seed"]].nunique()),
        "acc_graphs": float(_col(df, f"metrics.{prefix}_n").mean()),
        "asr_graphs": float(_col(df, f"metrics.{prefix}_asr_n").mean()),
    }


def table3(runs: pd.DataFrame, reference: Path | str | None = None) -> pd.DataFrame:
    """Long-format Table 3: one row per (dataset, attack, defense), defense ``none`` = before."""
    cols = ["dataset", "attack", "defense", "asr_mean", "asr_std", "acc_mean", "acc_std", "seeds"]
    cols += ["acc_graphs", "asr_graphs", "paper_asr", "paper_acc"]
    if runs.empty or any(k not in runs for k in KEYS.values()):
        return pd.DataFrame(columns=cols)
    df = (
        runs[runs["subsweep"] == "main"]
        if "subsweep" in runs and (runs["subsweep"] == "main").any()
        else runs
    )
    df = df[df[KEYS["attack"]].notna()]
    rows = []
    for (dataset, attack), group in df.groupby([KEYS["dataset"], KEYS["attack"]], sort=True):
        before = group.drop_duplicates(subset=[KEYS["seed"]])  # one backdoored model per seed
        rows.append({"dataset": dataset, "attack": attack, "defense": "none", **_summary(before, "backdoor")})
        for defense, dgroup in group[group[KEYS["defense"]].notna()].groupby(KEYS["defense"]):
            rows.append(
                {"dataset": dataset, "attack": attack, "defense": defense, **_summary(dgroup, "defended")}
            )
    table = pd.DataFrame(rows)
    ref = _reference(reference)
    if ref is not None and not table.empty:
        table["attack_label"] = table["attack"].map(lambda a: ATTACK_LABELS.get(a, a))
        table = table.merge(
            ref.rename(columns={"attack": "attack_label", "asr": "paper_asr", "acc": "paper_acc"}),
            on=["dataset", "attack_label", "defense"],
            how="left",
        ).drop(columns=["attack_label"])
    for c in ("paper_asr", "paper_acc"):
        if c not in table:
            table[c] = float("nan")
    order = {d: i for i, d in enumerate(DEFENSE_ORDER)}
    table["_o"] = table["defense"].map(lambda d: order.get(d, len(order)))
    return (
        table.sort_values(["dataset", "attack", "_o", "defense"])
        .drop(columns="_o")[cols]
        .reset_index(drop=True)
    )


def _reference(reference: Path | str | None) -> pd.DataFrame | None:
    folder = Path(reference) if reference else reference_dir()
    path = (
        folder / "gcleaner_table3.csv"
        if folder and folder.is_dir()
        else (Path(reference) if reference else None)
    )
    if path is None or not path.is_file():
        return None
    return pd.read_csv(path)


def _cell(mean: float, std: float, paper: float) -> str:
    if pd.isna(mean):
        return "n/a"
    text = f"{mean:.2f}±{std:.2f}"
    return text + (f" ({paper:.2f})" if not pd.isna(paper) else "")


def table3_markdown(table: pd.DataFrame) -> str:
    """Wide Markdown: a row per dataset/attack, ASR and ACC per defense as ``ours±std (paper)``."""
    if table.empty:
        return "_no finished runs with an attack_\n"
    defenses = [d for d in DEFENSE_ORDER if d in set(table["defense"])]
    defenses += sorted(set(table["defense"]) - set(defenses))
    head = ["dataset", "attack"] + [
        f"{'before' if d == 'none' else d} {m}" for d in defenses for m in ("ASR", "ACC")
    ]
    head += ["seeds", "test graphs (ACC/ASR)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (dataset, attack), group in table.groupby(["dataset", "attack"], sort=True):
        by = {r["defense"]: r for _, r in group.iterrows()}
        cells = [str(dataset), ATTACK_LABELS.get(attack, attack)]
        for d in defenses:
            r = by.get(d)
            if r is None:
                cells += ["", ""]
            else:
                cells += [
                    _cell(r["asr_mean"], r["asr_std"], r["paper_asr"]),
                    _cell(r["acc_mean"], r["acc_std"], r["paper_acc"]),
                ]
        none = by.get("none")
        seeds = int(group["seeds"].max())
        graphs = f"{none['acc_graphs']:.0f}/{none['asr_graphs']:.0f}" if none is not None else ""
        cells += [str(seeds), graphs]
        lines.append("| " + " | ".join(cells) + " |")
    note = "\nPercent, mean±std over seeds; the paper's value (GCleaner Table 3) in parentheses.\n"
    return "\n".join(lines) + "\n" + note
