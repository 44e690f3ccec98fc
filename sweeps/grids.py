"""The GCleaner study as data: defaults, named sub-sweeps, presets (no loops here; see ``spec.expand``).

Defaults are GCleaner section 5.1: 8:2 split, 3% holding (clean) data from the test split, injection ratio
φ = 5%, trigger size t = 20% of the average node count, GIN, five repetitions; GCleaner runs trigger
recovery for 20 epochs and unlearning for 30 epochs (SGD, η = 0.001, B = 64, λ from Appendix A).

A new attack/defense/explainer plugs in by being registered: every sub-sweep below already lists the
paper's methods and keeps those that exist. GCleaner's own parameter names live in ``GC`` (one place).
"""

from __future__ import annotations

from typing import Any

from sweeps.spec import Preset, SubSweep

# ---- methods and datasets of the paper -----------------------------------------------------------------
DATASETS4 = ("AIDS", "Fingerprint", "COLLAB", "Bitcoin")  # Table 2
ATTACKS4 = ("sub_ba", "gta", "exp_ba", "motif_ba")  # Table 3 rows
DEFENSES_T3 = ("gcleaner", "abl", "prune", "smoothing", "finetune")  # Table 3 columns + fine-tuning baseline
DETECTORS_T7 = ("ed", "xgbd", "gcleaner")  # Table 7: detect on the training set, drop, retrain; vs GCleaner
BACKBONES = ("GCN", "GAT", "GIN", "GraphSAGE")  # Figure 8
RECOVERY_EXPLAINERS = ("random", "gnnexplainer", "pgexplainer", "subgraphx")  # Table 4
HEATMAP_METHODS = ("none", "gnnexplainer", "integrated_gradients", "guided_backprop", "gradcam")  # Table 6
UNLEARNERS = ("retrain", "gnndelete", "grapheditor", "idea")  # Forget-and-Explain
NODE_DATASETS = ("Cora", "CiteSeer", "PubMed", "CoauthorCS", "CoauthorPhysics")

# GCleaner's parameter names (gnnsec/defenses/gcleaner/): the only place sweeps spell them.
GC: dict[str, str] = {
    "lambda": "defense.params.lam",
    "n": "defense.params.n",
    "T": "defense.params.threshold",
    "recovery_epochs": "defense.params.recovery_epochs",
    "recovery_lr": "defense.params.recovery_lr",
    "unlearn_epochs": "defense.params.unlearn_epochs",
    "unlearn_lr": "defense.params.lr",
    "teacher_epochs": "defense.params.teacher_epochs",
    "explainer": "defense.params.recovery_explainer",
    "heatmap": "defense.params.heatmap",
    "l1": "defense.params.l1_unlearn",
    "l2": "defense.params.l2_unlearn",
    "explain": "defense.params.l_explain",
}

DEFAULTS: dict[str, Any] = {
    "data.dataset": "AIDS",
    "data.train_ratio": 0.8,
    "data.holding_rate": 0.03,
    "model.name": "GIN",
    "attack.name": "sub_ba",
    "attack.injection_ratio": 0.05,
    "attack.trigger_size": 0.2,
    "attack.target_label": 1,  # Table 2: target label 1 on every dataset
    "defense.name": "gcleaner",
}

_M = {"attack.name": "attack", "defense.name": "defense"}  # method keys present in most sub-sweeps

# ---- the study ------------------------------------------------------------------------------------------
SUBSWEEPS: dict[str, SubSweep] = {
    s.name: s
    for s in (
        SubSweep(
            "main",
            "Table 3",
            axes={"data.dataset": DATASETS4, "attack.name": ATTACKS4, "defense.name": DEFENSES_T3},
            methods=_M,
            description="ASR/ACC before and after each defense, four datasets x four attacks",
        ),
        SubSweep(
            "injection_ratio",
            "Figure 6",
            axes={
                "attack.injection_ratio": (0.01, 0.03, 0.05, 0.07, 0.09),
                "attack.name": ATTACKS4,
                "defense.name": DEFENSES_T3,
            },
            factor="attack.injection_ratio",
            methods=_M,
            description="injection ratio 1-9% step 2 on AIDS",
        ),
        SubSweep(
            "trigger_size",
            "Figure 12",
            axes={
                "attack.trigger_size": (0.05, 0.1, 0.2, 0.3, 0.4, 0.5),
                "data.dataset": DATASETS4,
                "defense.name": DEFENSES_T3,
            },
            factor="attack.trigger_size",
            methods=_M,
            description="trigger size 5-50% of the average graph size, four datasets",
        ),
        SubSweep(
            "detection",
            "Table 7",
            axes={"attack.name": ATTACKS4, "defense.name": DETECTORS_T7},
            fixed={"data.dataset": "AIDS"},
            methods=_M,
            description="detectors ED, XGBD (training set filtered, model retrained) vs GCleaner on AIDS",
        ),
        SubSweep(
            "holding_rate",
            "Figure 7",
            axes={
                "data.holding_rate": (0.01, 0.02, 0.03, 0.05, 0.07, 0.1),
                "data.dataset": DATASETS4,
                "attack.name": ATTACKS4,
            },
            factor="data.holding_rate",
            methods=_M,
            description="defender's clean data 1-10% of the dataset",
        ),
        SubSweep(
            "lambda",
            "Figure 11",
            axes={GC["lambda"]: (0.0, 0.1, 0.5, 1.0, 2.0, 5.0), "attack.name": ATTACKS4},
            factor=GC["lambda"],
            methods=_M,
            description="weight of L_explain in Eq. 14",
        ),
        SubSweep(
            "recovered_nodes",
            "Table 8",
            axes={GC["n"]: (1, 2, 3, 4, 5, 6, 7)},
            factor=GC["n"],
            methods=_M,
            description="number n of recovered trigger nodes (AIDS, Sub-BA)",
        ),
        SubSweep(
            "backbone",
            "Figure 8",
            axes={"model.name": BACKBONES, "data.dataset": DATASETS4, "attack.name": ATTACKS4},
            factor="model.name",
            methods={**_M, "model.name": "model"},
            description="GCN, GAT, GIN, GraphSAGE on four datasets",
        ),
        SubSweep(
            "recovery_explainer",
            "Table 4",
            axes={GC["explainer"]: RECOVERY_EXPLAINERS, "attack.name": ATTACKS4},
            factor=GC["explainer"],
            methods={**_M, GC["explainer"]: "explainer"},
            description="where the recovered trigger is injected (AIDS)",
        ),
        SubSweep(
            "heatmap",
            "Table 6",
            axes={GC["heatmap"]: HEATMAP_METHODS, "attack.name": ATTACKS4},
            factor=GC["heatmap"],
            methods={**_M, GC["heatmap"]: "heatmap"},
            description="heatmap method of L_explain (AIDS)",
        ),
        SubSweep(
            "loss_components",
            "Table 9",
            axes={},
            cases=(
                {GC["l1"]: False, GC["l2"]: False, GC["explain"]: False},
                {GC["l1"]: True, GC["l2"]: False, GC["explain"]: False},
                {GC["l1"]: True, GC["l2"]: True, GC["explain"]: False},
                {GC["l1"]: True, GC["l2"]: True, GC["explain"]: True},
            ),
            methods=_M,
            description="L1_unlearn, L2_unlearn, L_explain switched on one by one (AIDS, Sub-BA)",
        ),
        SubSweep(
            "adaptive_alpha",
            "Figure 9",
            axes={"attack.adaptive_alpha": (0.0, 0.5, 1.0, 2.0, 5.0), "attack.name": ATTACKS4},
            factor="attack.adaptive_alpha",
            methods=_M,
            description="adaptive attack L_atk - alpha L_pq (Eq. 16) on AIDS",
        ),
        SubSweep(
            "auxiliary",
            "Table 5",
            axes={"defense.auxiliary_dataset": ("NCI1", "COLLAB"), "attack.name": ATTACKS4},
            factor="defense.auxiliary_dataset",
            methods=_M,
            description="defender's clean data from another dataset (AIDS backdoored)",
        ),
        SubSweep(
            "unlearning",
            "Forget-and-Explain Tables 1-2",
            axes={"data.dataset": NODE_DATASETS, "model.name": ("GCN", "GAT"), "unlearning.name": UNLEARNERS},
            fixed={
                "attack": None,
                "defense": None,
                "model.hidden": 64,
                "model.num_layers": 2,
                "model.dropout": 0.5,
                "train.lr": 0.005,
                "train.epochs": 100,
                "train.weight_decay": 5e-4,  # = gnnsec.node_trial.PAPER_SETTINGS
                "unlearning.forget_ratio": 0.05,
            },
            task="node",
            methods={"unlearning.name": "unlearner", "model.name": "node_model"},
            description="unlearning verification: datasets x backbones x unlearners",
        ),
    )
}

# ---- presets --------------------------------------------------------------------------------------------
_TINY = {"train.epochs": 3, "model.hidden": 16, "train.batch_size": 64}

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "smoke",
            "CI: a handful of tiny MUTAG trials (3 epochs), one seed; minutes on 2 cores",
            subsweeps=("main", "injection_ratio", "holding_rate"),
            datasets=("MUTAG",),
            seeds=(0,),
            overrides=_TINY,
            defense_params={
                "finetune": {"epochs": 2},
                "gcleaner": {
                    "recovery_epochs": 2,
                    "unlearn_epochs": 2,
                    "teacher_epochs": 2,
                    "restarts": 1,
                    "recovery_explainer": "random",
                },
            },
            limits={
                "main": {"defense.name": ("finetune",)},  # every attack once
                "injection_ratio": {
                    "attack.injection_ratio": (0.05, 0.1),
                    "attack.name": ("sub_ba",),
                    "defense.name": ("finetune",),
                },
                "holding_rate": {  # GCleaner twice, on one cached backdoored model
                    "data.holding_rate": (0.03, 0.1),
                    "attack.name": ("sub_ba",),
                    "defense.name": ("gcleaner",),
                },
            },
        ),
        Preset(
            "quick",
            "one machine: AIDS and Fingerprint, all attacks, paper defaults, one seed; "
            "plus small defense-side ablations on AIDS",
            subsweeps=(
                "main",
                "injection_ratio",
                "holding_rate",
                "lambda",
                "recovered_nodes",
                "loss_components",
            ),
            datasets=("AIDS", "Fingerprint"),
            seeds=(0,),
            limits={
                "main": {"defense.name": ("gcleaner", "finetune")},
                "injection_ratio": {
                    "data.dataset": ("AIDS",),
                    "attack.injection_ratio": (0.01, 0.05, 0.09),
                    "attack.name": ("sub_ba",),
                    "defense.name": ("gcleaner", "finetune"),
                },
                "holding_rate": {
                    "data.dataset": ("AIDS",),
                    "data.holding_rate": (0.01, 0.03, 0.05, 0.1),
                    "attack.name": ("sub_ba",),
                    "defense.name": ("gcleaner", "finetune"),
                },
                "lambda": {"data.dataset": ("AIDS",), "attack.name": ("sub_ba",)},
                "recovered_nodes": {"data.dataset": ("AIDS",)},
                "loss_components": {"data.dataset": ("AIDS",)},
            },
        ),
        Preset(
            "baselines_fig12",
            "Figure 12 for the baselines on AIDS (one machine): Sub-BA at trigger sizes 10-50%, Prune and "
            "Smoothing (the paper: both worsen with larger triggers) next to GCleaner and fine-tuning, one seed",
            subsweeps=("trigger_size",),
            datasets=("AIDS",),
            seeds=(0,),
            limits={
                "trigger_size": {
                    "attack.trigger_size": (0.1, 0.2, 0.3, 0.5),
                    "defense.name": ("prune", "smoothing", "gcleaner", "finetune"),
                }
            },
        ),
        Preset(
            "paper",
            "everything in the GCleaner study (and unlearning verification), five seeds",
            seeds=(0, 1, 2, 3, 4),
        ),
    )
}

# ---- cost model for --dry-run estimates -----------------------------------------------------------------
# (graphs, average nodes) from GCleaner Table 2 / the data MANIFEST; node-level datasets: (1, nodes).
DATASET_SIZE: dict[str, tuple[int, float]] = {
    "AIDS": (2000, 15.69),
    "Fingerprint": (1661, 8.15),
    "COLLAB": (5000, 73.49),
    "Bitcoin": (1174, 14.63),
    "MUTAG": (188, 17.93),
    "NCI1": (4110, 29.87),
    "PROTEINS": (1113, 39.06),
    "Cora": (1, 2708),
    "CiteSeer": (1, 3327),
    "PubMed": (1, 19717),
    "CoauthorCS": (1, 18333),
    "CoauthorPhysics": (1, 34493),
}
# Seconds per node per epoch of one GIN-3/64 on one CPU core, measured on AIDS/Fingerprint/MUTAG
# (0.5 s / 0.34 s / 0.054 s per epoch over 1600/1328/150 training graphs): about 2.5e-5.
SECONDS_PER_NODE_EPOCH = 2.5e-5
TRIAL_OVERHEAD_SECONDS = 8.0  # imports, dataset load, evaluation
COLLAB_EDGE_FACTOR = 8.0  # COLLAB graphs are dense (2458 edges / 73 nodes on average)
