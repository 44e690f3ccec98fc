"""GCleaner Tables 2-9 from tracked runs, each beside the paper's numbers (``../shared/reference``).

Rates are percent, mean±std over seeds. "Before" is the backdoored model (``backdoor_*``, one value per
backdoored model and seed however many defenses reused it), "after" the defended one (``defended_*``).
Each function returns a :class:`~gnnsec.report.summary.Table` (empty when its sub-sweep has no runs).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from gnnsec.report.catalog import DEFENSE_ORDER, ITEM, LABEL, METRIC, PARAM
from gnnsec.report.runs import metric, param, subsweep
from gnnsec.report.summary import Table, attach_paper, melt_reference, summarize

log = logging.getLogger(__name__)


def reference_dir() -> Path | None:
    """``$GNNSEC_REFERENCE_DIR``, else ``reference/`` beside the data mirror (``$GNNSEC_DATA_MIRROR/..``,
    as in ``shared/``), else the nearest ``shared/reference`` beside the checkout or its parents
    (``<checkout>/../shared/reference``; also for git worktrees one level deeper)."""
    env = os.environ.get("GNNSEC_REFERENCE_DIR")
    if env:
        return Path(env)
    mirror = os.environ.get("GNNSEC_DATA_MIRROR")
    if mirror and (Path(mirror).expanduser().parent / "reference").is_dir():
        return Path(mirror).expanduser().parent / "reference"
    for parent in Path(__file__).resolve().parents[3:6]:
        if (parent / "shared" / "reference").is_dir():
            return parent / "shared" / "reference"
    return None


def read_reference(name: str | None, folder: Path | str | None = None) -> pd.DataFrame | None:
    """A paper's reference CSV from ``folder`` (default :func:`reference_dir`), else the package's copy."""
    if not name:
        return None
    for base in (Path(folder) if folder else reference_dir(), Path(__file__).parent / "reference"):
        if base is not None and (base / name).is_file():
            return pd.read_csv(base / name)
    return None


def labelled(series: pd.Series, family: str) -> pd.Series:
    names = LABEL.get(family, {})
    return series.map(lambda v: names.get(v, v))


def _rates(df: pd.DataFrame, prefix: str) -> dict[str, pd.Series]:
    return {"asr": 100 * metric(df, f"{prefix}_asr"), "acc": 100 * metric(df, f"{prefix}_acc")}


def _seeds(df: pd.DataFrame) -> pd.Series:
    return param(df, PARAM["seed"])


def _table(key: str, frame: pd.DataFrame, groups: list[str], metrics: list[str], note: str = "") -> Table:
    return Table(key, ITEM[key].caption, frame, groups, metrics, note, {"test graphs per rate": "graphs"})


def _counts(df: pd.DataFrame, prefix: str) -> dict[str, pd.Series]:
    """Test graphs behind each rate: ACC over the evaluation graphs, ASR over the triggered non-target ones."""
    return {"acc": metric(df, f"{prefix}_n"), "asr": metric(df, f"{prefix}_asr_n")}


# ---- Table 2 --------------------------------------------------------------------------------------------
def table2(runs: pd.DataFrame, reference: Path | str | None = None) -> Table:
    """Dataset statistics of every graph dataset the sweep used (gnnsec.data.stats), beside the paper's."""
    from gnnsec.data.stats import dataset_stats

    names = sorted(set(param(runs, PARAM["dataset"]).dropna())) if not runs.empty else []
    rows = []
    for name in names:
        try:
            s = dataset_stats(name)
        except Exception as exc:  # a dataset no longer loadable here: say so in the table
            log.warning("Table 2: statistics of %s unavailable: %s", name, exc)
            continue
        if s.get("task") != "graph":
            continue
        for m in ("graphs", "avg_nodes", "avg_edges", "classes"):
            rows.append({"dataset": name, "metric": m, "ours_mean": float(s[m]), "ours_std": float("nan")})
        rows.append({"dataset": name, "metric": "graphs_per_class", "ours": s["graphs_per_class"]})
    frame = pd.DataFrame(rows, columns=["dataset", "metric", "ours_mean", "ours_std", "ours"])
    frame["seeds"], frame["runs"], frame["graphs"] = 1, 1, float("nan")
    ref = read_reference(ITEM["gcleaner_table2"].reference, reference)
    paper = melt_reference(ref, ["dataset"], {m: m for m in ("graphs", "avg_nodes", "avg_edges", "classes")})
    frame = attach_paper(frame, paper, ["dataset"])
    if ref is not None and not frame.empty:
        per_class = ref.set_index("dataset")["graphs_per_class"].to_dict()
        mask = frame["metric"] == "graphs_per_class"
        frame.loc[mask, "paper_text"] = frame.loc[mask, "dataset"].map(per_class)
    table = Table("gcleaner_table2", ITEM["gcleaner_table2"].caption, frame, ["dataset"], [])
    table.metrics = ["graphs", "avg_nodes", "avg_edges", "classes", "graphs_per_class"]
    table.extra = {}
    table.show_seeds = False
    table.note = "Statistics of the datasets as gnnsec loads them (no seeds involved)."
    return table


# ---- Table 3 --------------------------------------------------------------------------------------------
def _before_after(df: pd.DataFrame, groups: dict[str, pd.Series], group_before: list[str]) -> pd.DataFrame:
    """Rows ``defense=none`` (backdoored model, once per seed) and one per defense (defended model)."""
    before_df = df.assign(_seed=_seeds(df)).drop_duplicates(subset=[*group_before, "_seed"])
    before = summarize(
        {k: v.loc[before_df.index] for k, v in groups.items()}
        | {"defense": pd.Series("none", before_df.index)},
        _rates(before_df, "backdoor"),
        _seeds(before_df),
        _counts(before_df, "backdoor"),
    )
    has_def = df[param(df, PARAM["defense"]).notna()]
    after = summarize(
        {k: v.loc[has_def.index] for k, v in groups.items()} | {"defense": param(has_def, PARAM["defense"])},
        _rates(has_def, "defended"),
        _seeds(has_def),
        _counts(has_def, "defended"),
    )
    return pd.concat([before, after], ignore_index=True) if not after.empty else before


def _order_defenses(frame: pd.DataFrame, groups: list[str]) -> pd.DataFrame:
    order = {d: i for i, d in enumerate(DEFENSE_ORDER)}
    frame = frame.assign(_o=frame["defense"].map(lambda d: order.get(d, len(order))))
    return frame.sort_values([*groups, "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def table3(runs: pd.DataFrame, reference: Path | str | None = None) -> Table:
    """Dataset x attack, ASR/ACC before (``none``) and after each defense that ran (sub-sweep ``main``)."""
    df = subsweep(runs, "main")
    df = df[param(df, PARAM["attack"]).notna()]
    groups = {
        "dataset": param(df, PARAM["dataset"]),
        "attack": labelled(param(df, PARAM["attack"]), "attack"),
    }
    frame = _before_after(df, groups, [f"params.{PARAM['dataset']}", f"params.{PARAM['attack']}"])
    paper = melt_reference(
        read_reference(ITEM["gcleaner_table3"].reference, reference),
        ["dataset", "attack", "defense"],
        {"asr": "asr", "acc": "acc"},
    )
    frame = _order_defenses(
        attach_paper(frame, paper, ["dataset", "attack", "defense"]), ["dataset", "attack"]
    )
    return _table(
        "gcleaner_table3",
        frame,
        ["dataset", "attack", "defense"],
        ["asr", "acc"],
        "defense=none is the backdoored model before any defense.",
    )


# ---- Tables 4-9: one factor around the defaults -----------------------------------------------------------
def _after(
    df: pd.DataFrame, groups: dict[str, pd.Series], extra: dict[str, pd.Series] | None = None
) -> pd.DataFrame:
    return summarize(groups, {**_rates(df, "defended"), **(extra or {})}, _seeds(df), _counts(df, "defended"))


def _after_beside_paper(
    key: str,
    df: pd.DataFrame,
    groups: dict[str, pd.Series],
    reference: Path | str | None,
    extra: dict[str, pd.Series] | None = None,
) -> pd.DataFrame:
    """Defended ASR/ACC per group (plus ``extra`` metrics) with the paper's ASR/ACC of table ``key`` beside."""
    frame = _after(df, groups, extra)
    paper = melt_reference(
        read_reference(ITEM[key].reference, reference), list(groups), {"asr": "asr", "acc": "acc"}
    )
    return attach_paper(frame, paper, list(groups))


def table4(runs: pd.DataFrame, reference: Path | str | None = None) -> Table:
    """Recovery explainer x attack: real-vs-recovered similarity, Recovery-ASR, Unlearn-ASR (AIDS)."""
    df = subsweep(runs, "recovery_explainer")
    groups = {
        "dataset": param(df, PARAM["dataset"]),
        "recovery_explainer": labelled(param(df, PARAM["explainer"]), "explainer"),
        "attack": labelled(param(df, PARAM["attack"]), "attack"),
    }
    values = {
        "similarity": metric(df, METRIC["similarity"]),
        "recovery_asr": 100 * metric(df, METRIC["recovery_asr"]),
        "unlearn_asr": 100 * metric(df, METRIC["asr_after"]),
        "acc": 100 * metric(df, METRIC["acc_after"]),
    }
    counts = _counts(df, "defended")
    frame = summarize(groups, values, _seeds(df), {"acc": counts["acc"], "unlearn_asr": counts["asr"]})
    paper = melt_reference(
        read_reference(ITEM["gcleaner_table4"].reference, reference),
        ["dataset", "recovery_explainer", "attack"],
        {"similarity": "similarity", "recovery_asr": "recovery_asr", "unlearn_asr": "unlearn_asr"},
    )
    frame = attach_paper(frame, paper, list(groups))
    return _table(
        "gcleaner_table4",
        frame,
        list(groups),
        list(values),
        "similarity: mean cosine similarity of the backdoored model's embeddings of really and "
        "recovered-triggered test graphs; Recovery-ASR: ASR of the recovered trigger.",
    )


def table5(runs: pd.DataFrame, reference: Path | str | None = None) -> Table:
    """Auxiliary dataset x attack (AIDS backdoored), plus the ``Origin`` row (the defender's own AIDS data)."""
    df = subsweep(runs, "auxiliary")
    frame = _after(
        df,
        {
            "target_dataset": param(df, PARAM["dataset"]),
            "auxiliary_dataset": param(df, PARAM["auxiliary"]),
            "attack": labelled(param(df, PARAM["attack"]), "attack"),
        },
    )
    ref = read_reference(ITEM["gcleaner_table5"].reference, reference)
    paper = melt_reference(
        ref, ["target_dataset", "auxiliary_dataset", "attack"], {"asr": "asr", "acc": "acc"}
    )
    targets = set(frame["target_dataset"]) if not frame.empty else set()
    main = subsweep(runs, "main")
    main = main[(param(main, PARAM["defense"]) == "gcleaner") & param(main, PARAM["dataset"]).isin(targets)]
    if not main.empty:  # Origin: GCleaner with the target dataset's own clean data (Table 3's setting)
        origin = _after(
            main,
            {
                "target_dataset": param(main, PARAM["dataset"]),
                "auxiliary_dataset": pd.Series("Origin", index=main.index),
                "attack": labelled(param(main, PARAM["attack"]), "attack"),
            },
        )
        frame = pd.concat([origin, frame], ignore_index=True)
    t3 = read_reference(ITEM["gcleaner_table3"].reference, reference)
    if t3 is not None:
        gc = t3[t3["defense"] == "gcleaner"].rename(columns={"dataset": "target_dataset"})
        paper = pd.concat(
            [
                paper,
                melt_reference(
                    gc.assign(auxiliary_dataset="Origin"),
                    ["target_dataset", "auxiliary_dataset", "attack"],
                    {"asr": "asr", "acc": "acc"},
                ),
            ],
            ignore_index=True,
        )
    frame = attach_paper(frame, paper, ["target_dataset", "auxiliary_dataset", "attack"])
    return _table(
        "gcleaner_table5",
        frame,
        ["target_dataset", "auxiliary_dataset", "attack"],
        ["asr", "acc"],
        "Origin: GCleaner with the target dataset's own clean data (sub-sweep main).",
    )


def table6(runs: pd.DataFrame, reference: Path | str | None = None) -> Table:
    """Heatmap method of L_explain x attack: ASR/ACC after, and the delta against ``none`` (no L_explain)."""
    df = subsweep(runs, "heatmap")
    groups = {
        "dataset": param(df, PARAM["dataset"]),
        "attack": labelled(param(df, PARAM["attack"]), "attack"),
        "heatmap_method": param(df, PARAM["heatmap"]),
    }
    frame = _after(df, groups)
    ref = read_reference(ITEM["gcleaner_table6"].reference, reference)
    frame = _with_delta(frame, ["dataset", "attack"], "heatmap_method")
    if ref is not None:
        ref = _with_delta_wide(ref, ["dataset", "attack"], "heatmap_method")
    paper = melt_reference(ref, list(groups), {c: c for c in ("asr", "acc", "asr_delta", "acc_delta")})
    frame = attach_paper(frame, paper, list(groups))
    return _table(
        "gcleaner_table6",
        frame,
        list(groups),
        ["asr", "acc", "asr_delta", "acc_delta"],
        "delta: this heatmap method minus 'none' (L_explain off), same dataset and attack.",
    )


def _with_delta(frame: pd.DataFrame, keys: list[str], method: str) -> pd.DataFrame:
    if frame.empty:
        return frame
    base = frame[frame[method] == "none"].set_index([*keys, "metric"])["ours_mean"]
    rows = []
    for m in ("asr", "acc"):
        part = frame[frame["metric"] == m].copy()
        idx = pd.MultiIndex.from_frame(part[keys].assign(metric=m))
        part["ours_mean"] = part["ours_mean"].to_numpy() - base.reindex(idx).to_numpy()
        part["ours_std"] = float("nan")
        part["metric"] = f"{m}_delta"
        rows.append(part)
    return pd.concat([frame, *rows], ignore_index=True).sort_values(keys, kind="stable")


def _with_delta_wide(ref: pd.DataFrame, keys: list[str], method: str) -> pd.DataFrame:
    base = ref[ref[method] == "none"].set_index(keys)[["asr", "acc"]]
    joined = ref.join(base, on=keys, rsuffix="_none")
    return joined.assign(
        asr_delta=joined["asr"] - joined["asr_none"], acc_delta=joined["acc"] - joined["acc_none"]
    )


def table7(runs: pd.DataFrame, reference: Path | str | None = None) -> Table:
    """Detectors ED and XGBD vs GCleaner (sub-sweep ``detection``): ASR/ACC after, detection P/R/F1."""
    df = subsweep(runs, "detection")
    groups = {
        "dataset": param(df, PARAM["dataset"]),
        "attack": labelled(param(df, PARAM["attack"]), "attack"),
        "defense": param(df, PARAM["defense"]),
    }
    det = {k: 100 * metric(df, METRIC[k]) for k in ("det_precision", "det_recall", "det_f1")}
    frame = _after_beside_paper("gcleaner_table7", df, groups, reference, det)
    frame = _order_defenses(frame, ["dataset", "attack"])
    return _table(
        "gcleaner_table7",
        frame,
        list(groups),
        ["asr", "acc", *det],
        "det_*: precision/recall/F1 (%) of the training graphs a detector flagged (evaluation side).",
    )


def table8(runs: pd.DataFrame, reference: Path | str | None = None) -> Table:
    """Number n of recovered trigger nodes (AIDS, Sub-BA)."""
    df = subsweep(runs, "recovered_nodes")
    groups = {
        "dataset": param(df, PARAM["dataset"]),
        "attack": labelled(param(df, PARAM["attack"]), "attack"),
        "n": param(df, PARAM["n"]),
    }
    frame = _after_beside_paper("gcleaner_table8", df, groups, reference)
    return _table("gcleaner_table8", frame, list(groups), ["asr", "acc"])


def table9(runs: pd.DataFrame, reference: Path | str | None = None) -> Table:
    """Loss components L1_unlearn, L2_unlearn, L_explain switched on one by one (AIDS, Sub-BA)."""
    df = subsweep(runs, "loss_components")
    groups = {
        "dataset": param(df, PARAM["dataset"]),
        "attack": labelled(param(df, PARAM["attack"]), "attack"),
        **{k: param(df, PARAM[k]).map(_flag) for k in ("l1_unlearn", "l2_unlearn", "l_explain")},
    }
    return _table(
        "gcleaner_table9",
        _after_beside_paper("gcleaner_table9", df, groups, reference),
        list(groups),
        ["asr", "acc"],
        "The paper's all-off row is the backdoored model; ours is GCleaner with every loss off.",
    )


def _flag(v: object) -> object:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return int(v.lower() == "true")
    return v


GCLEANER_TABLES = {
    "gcleaner_table2": table2,
    "gcleaner_table3": table3,
    "gcleaner_table4": table4,
    "gcleaner_table5": table5,
    "gcleaner_table6": table6,
    "gcleaner_table7": table7,
    "gcleaner_table8": table8,
    "gcleaner_table9": table9,
}
