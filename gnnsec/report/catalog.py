"""The one place that names what the report reads: every table and figure of both papers, the sub-sweep
that fills it, the MLflow params/metrics it uses, and how our method names are spelled in the papers.

Params are the flattened ``TrialConfig`` keys the sweep driver logs (``sweeps/grids.py`` spells GCleaner's
own parameter names in ``GC``; the keys below must match it). Metrics are the names ``pipeline.run_trial``
reports. Names of metrics that other work streams add (issue 10's detectors, issue 11's unlearning
verifier) are marked ``# pending``: they are fixed here, in one place, when that work is merged.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---- MLflow params (``params.<key>`` columns of the runs frame) ----------------------------------------
PARAM = {
    "dataset": "data.dataset",
    "holding_rate": "data.holding_rate",
    "model": "model.name",
    "seed": "train.seed",
    "attack": "attack.name",
    "injection_ratio": "attack.injection_ratio",
    "trigger_size": "attack.trigger_size",
    "alpha": "attack.adaptive_alpha",
    "defense": "defense.name",
    "auxiliary": "defense.auxiliary_dataset",
    "explainer": "defense.params.recovery_explainer",
    "heatmap": "defense.params.heatmap",
    "n": "defense.params.n",
    "lambda": "defense.params.lam",
    "l1_unlearn": "defense.params.l1_unlearn",
    "l2_unlearn": "defense.params.l2_unlearn",
    "l_explain": "defense.params.l_explain",
    "unlearner": "unlearning.name",
}

# ---- MLflow metrics -------------------------------------------------------------------------------------
METRIC = {
    # pipeline.run_trial (rates are fractions in [0, 1]; the report shows percent)
    "asr_before": "backdoor_asr",
    "acc_before": "backdoor_acc",
    "asr_after": "defended_asr",
    "acc_after": "defended_acc",
    # every rate <model>_acc / <model>_asr (model: clean, backdoor, defended) comes with its number of test
    # graphs <model>_n / <model>_asr_n; the tables show them beside the rates
    "similarity": "recovery_similarity",
    "recovery_asr": "recovery_asr",
    # detectors ED / XGBD (issue 10): precision/recall/F1 of the flagged training graphs  # pending
    "det_precision": "defense_detect_precision",
    "det_recall": "defense_detect_recall",
    "det_f1": "defense_detect_f1",
    # node unlearning + verifier (gnnsec/node_trial.py)
    "ra_pre": "verify_ra_pre",
    "ra_post": "verify_ra_post",
    "hs": "verify_hs",
    "esd": "verify_esd",
    "ged": "verify_ged",
    "grs": "verify_grs",
    "mi_pre": "verify_mi_auc_pre",
    "mi_post": "verify_mi_auc_post",
    "unlearn_acc_before": "base_acc",
    "unlearn_acc_after": "unlearned_acc",
    "unlearn_seconds": "unlearn_seconds",
}

# Per-epoch histories (MLflow metric ``<phase>/<key>`` with step = epoch) drawn per unlearning epoch.
# The defender's own signals (GCleaner: validation accuracy, flip rate of its recovered trigger) and, when a
# defense logs them, the evaluation-side test ACC/ASR per epoch.
EPOCH_SERIES = {
    "val_acc": "defense/val_acc",
    "val_flip": "defense/val_flip",
    "test_acc": "defense/test_acc",  # pending (evaluation-side per-epoch ACC)
    "test_asr": "defense/test_asr",  # pending (evaluation-side per-epoch ASR)
}

# Artifacts logged per run by the sweep callback.
ARTIFACT = {"per_class": "per_class_acc.json", "embeddings": "embeddings.npz"}

# ---- spelling in the papers (reference CSVs use these) -------------------------------------------------
LABEL = {
    "attack": {"sub_ba": "Sub-BA", "gta": "GTA", "exp_ba": "Exp-BA", "motif_ba": "Motif-BA"},
    "explainer": {
        "random": "Random",
        "gnnexplainer": "GNNExplainer",
        "pgexplainer": "PGExplainer",
        "subgraphx": "SubgraphX",
    },
    "unlearner": {
        "retrain": "Retrain",
        "gnndelete": "GNNDelete",
        "grapheditor": "GraphEditor",
        "idea": "IDEA",
    },
}
DEFENSE_ORDER = ("none", "abl", "prune", "smoothing", "finetune", "ed", "xgbd", "gcleaner")

# The paper's defaults (GCleaner 5.1): where a figure's factor takes this value, Table 3 is the paper's point.
PAPER_DEFAULTS = {
    "attack.injection_ratio": 0.05,
    "attack.trigger_size": 0.2,
    "data.holding_rate": 0.03,
    "model.name": "GIN",
    "attack.adaptive_alpha": 0.0,  # alpha = 0: the plain (non-adaptive) attack of Table 3
    "defense.params.lam": 1.0,  # section 5.2.4: "the default setting is lambda = 1"
}


@dataclass(frozen=True)
class Item:
    """One table or figure of a paper: what it shows and which sub-sweep's runs fill it."""

    key: str  # file stem: gcleaner_table3, gcleaner_fig6, ...
    paper: str  # "GCleaner" | "Forget-and-Explain"
    caption: str
    subsweep: str
    reference: str | None = None  # CSV in the reference folder with the paper's numbers
    needs: str = "values for it"  # what its runs must have logged (for the "not rendered" reason)


GC_PAPER, FE_PAPER = "GCleaner", "Forget-and-Explain"

ITEMS: tuple[Item, ...] = (
    Item(
        "gcleaner_table2",
        GC_PAPER,
        "Table 2: dataset statistics, ours vs the paper's",
        "",
        "gcleaner_table2.csv",
        needs="graph datasets",
    ),
    Item(
        "gcleaner_table3",
        GC_PAPER,
        "Table 3: ASR/ACC before and after each defense (GIN)",
        "main",
        "gcleaner_table3.csv",
    ),
    Item(
        "gcleaner_table4",
        GC_PAPER,
        "Table 4: trigger recovery with different explainers",
        "recovery_explainer",
        "gcleaner_table4.csv",
    ),
    Item(
        "gcleaner_table5",
        GC_PAPER,
        "Table 5: defending with an auxiliary dataset's clean data",
        "auxiliary",
        "gcleaner_table5.csv",
    ),
    Item(
        "gcleaner_table6",
        GC_PAPER,
        "Table 6: heatmap methods for L_explain (delta vs none)",
        "heatmap",
        "gcleaner_table6.csv",
    ),
    Item(
        "gcleaner_table7",
        GC_PAPER,
        "Table 7: detectors ED and XGBD vs GCleaner",
        "detection",
        "gcleaner_table7.csv",
    ),
    Item(
        "gcleaner_table8",
        GC_PAPER,
        "Table 8: number n of recovered trigger nodes",
        "recovered_nodes",
        "gcleaner_table8.csv",
    ),
    Item("gcleaner_table9", GC_PAPER, "Table 9: loss components", "loss_components", "gcleaner_table9.csv"),
    Item(
        "gcleaner_fig5",
        GC_PAPER,
        "Figure 5: per-class accuracy of clean, backdoored and defended models",
        "main",
        needs="GCleaner runs with per-class accuracy (metrics *_acc_class<c>)",
    ),
    Item(
        "gcleaner_fig6",
        GC_PAPER,
        "Figure 6: injection ratio, one line per defense",
        "injection_ratio",
        "gcleaner_table3.csv",
    ),
    Item(
        "gcleaner_fig7",
        GC_PAPER,
        "Figure 7: holding rate of the defender's clean data",
        "holding_rate",
        "gcleaner_table3.csv",
    ),
    Item("gcleaner_fig8", GC_PAPER, "Figure 8: backbones", "backbone", "gcleaner_table3.csv"),
    Item(
        "gcleaner_fig9",
        GC_PAPER,
        "Figure 9: adaptive attack strength alpha",
        "adaptive_alpha",
        "gcleaner_table3.csv",
    ),
    Item(
        "gcleaner_fig10",
        GC_PAPER,
        "Figure 10: t-SNE of clean and triggered embeddings before/after GCleaner",
        "main",
        needs="GCleaner runs with an embeddings.npz artifact",
    ),
    Item(
        "gcleaner_fig11", GC_PAPER, "Figure 11: weight lambda of L_explain", "lambda", "gcleaner_table3.csv"
    ),
    Item(
        "gcleaner_fig12",
        GC_PAPER,
        "Figure 12: trigger size, one line per defense",
        "trigger_size",
        "gcleaner_table3.csv",
    ),
    Item(
        "gcleaner_unlearn_epochs",
        GC_PAPER,
        "ACC/ASR per unlearning epoch (GCleaner, main sub-sweep)",
        "main",
        needs="GCleaner runs with per-epoch defense/* histories",
    ),
    Item(
        "fe_table1",
        FE_PAPER,
        "Table 1: attribution and structure deltas of unlearning (RA, HS, ESD, GED, GRS)",
        "unlearning",
        "forget_explain_table1.csv",
    ),
    Item(
        "fe_table2",
        FE_PAPER,
        "Table 2: RA drop and membership-inference ROC-AUC pre/post",
        "unlearning",
        "forget_explain_table2.csv",
    ),
)
ITEM = {item.key: item for item in ITEMS}
