"""``run_trial(config) -> TrialResult``: data → clean model → attack → defense → metrics.

The only place that composes the layers. Clean and backdoored models come from the artifact cache when a
previous trial with the same determining settings built them. A post-training defense receives a
:class:`~gnnsec.defenses.base.DefenderData` made from the holding split alone; a training-time defense
receives the poisoned training set as a plain list, the training recipe and a seed, and trains in place of
the victim (its model cached under :func:`gnnsec.artifact_keys.defended_spec`). Only the evaluation
(:class:`gnnsec.pipeline_defense.BackdoorEval`) knows the real trigger, the target and the poisoned set.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gnnsec import artifact_keys, pipeline_clean
from gnnsec.attacks import ATTACKS, Attack, AttackContext
from gnnsec.cache import ArtifactCache, atomic_write_text, load_tensors, save_tensors
from gnnsec.config import DataConfig, TrialConfig
from gnnsec.data.loading import GraphDataset, load_graph_dataset
from gnnsec.data.splits import GraphSplit
from gnnsec.defenses import DEFENSES, DefenderData, Defense, InferenceWrapper, TrainingDefense, TrainingRecipe
from gnnsec.defenses.labels import pseudo_labelled
from gnnsec.errors import ConfigError
from gnnsec.metrics import attack_success
from gnnsec.models import GraphClassifier, build_graph_model
from gnnsec.pipeline_defense import (
    BackdoorEval,
    DefenseRun,
    detection_metrics,
    evaluate_defended,
    run_post_training,
    run_training_time,
)
from gnnsec.train import evaluate, fit, predict, select_device
from gnnsec.verify.backdoor import verify_backdoor_unlearning

log = logging.getLogger(__name__)

POISON_SALT, EVAL_SALT = 1, 2
FLOOR_SKIPPED = "clean-model floor not computed: attack.clean_floor=false (no clean model trained)"


@dataclass
class TrialResult:
    """Final metrics (flat floats), per-epoch histories, and small artifacts (per-class accuracy, ...)."""

    metrics: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- cache keys ----------------------------------------------------------------------------------------
# One source for the pipeline and the sweep driver: gnnsec.artifact_keys (computed from the config alone).
def clean_spec(cfg: TrialConfig, ds: GraphDataset | None = None) -> dict[str, Any]:
    del ds  # the key depends on the config only (the driver computes it without loading data)
    return artifact_keys.clean_spec(cfg)


def backdoor_spec(cfg: TrialConfig, ds: GraphDataset | None = None) -> dict[str, Any]:
    del ds
    return artifact_keys.backdoor_spec(cfg)


# ---- models --------------------------------------------------------------------------------------------
def new_model(cfg: TrialConfig, ds: GraphDataset, seed: int | None = None) -> GraphClassifier:
    """A freshly initialised backbone (seeded with ``seed``, default the training seed)."""
    torch.manual_seed(cfg.train.seed if seed is None else seed)
    m = cfg.model
    return build_graph_model(
        m.name,
        ds.num_features,
        ds.num_classes,
        hidden=m.hidden,
        num_layers=m.num_layers,
        dropout=m.dropout,
        pooling=m.pooling,
    )


def _load_model(cfg: TrialConfig, ds: GraphDataset, folder: Path) -> GraphClassifier:
    model = new_model(cfg, ds)
    model.load_state_dict(load_tensors(folder / "model.pt"))
    return model.to(select_device(cfg.train.device)).eval()


def clean_model(
    cfg: TrialConfig, ds: GraphDataset, split: GraphSplit, cache: ArtifactCache
) -> tuple[GraphClassifier, dict]:
    """The never-poisoned model (cached); returns it and its training info."""
    train_graphs = ds.subset(split.train)

    def build(tmp: Path) -> None:
        model = new_model(cfg, ds)
        t0 = time.perf_counter()
        history = fit(model, train_graphs, cfg.train, desc="clean")
        info = {"seconds": time.perf_counter() - t0, "history": history}
        save_tensors(tmp / "model.pt", model.state_dict())
        atomic_write_text(tmp / "info.json", json.dumps(info))

    folder, hit = cache.get_or_create("clean", clean_spec(cfg, ds), build)
    info = json.loads((folder / "info.json").read_text())
    info["cached"] = hit
    return _load_model(cfg, ds, folder), info


def make_attack(cfg: TrialConfig, ds: GraphDataset) -> Attack:
    assert cfg.attack is not None
    return ATTACKS.get(cfg.attack.name)(cfg.attack, ds.featurizer, ds.num_classes, ds.avg_nodes)


def backdoored_model(
    cfg: TrialConfig, ds: GraphDataset, split: GraphSplit, cache: ArtifactCache, clean: GraphClassifier
) -> tuple[Attack, GraphClassifier, dict]:
    """Poison the training split, train the backdoored model (cached with its trigger)."""
    attack = make_attack(cfg, ds)
    train_graphs = ds.subset(split.train)

    def build(tmp: Path) -> None:
        ctx = AttackContext(
            train_graphs,
            ds.featurizer,
            ds.num_classes,
            ds.avg_nodes,
            lambda: new_model(cfg, ds),
            cfg.train,
            clean_model=clean,
        )
        t0 = time.perf_counter()
        attack.reseed(POISON_SALT)
        attack.prepare(ctx)
        victims = attack.select_victims(train_graphs)
        poisoned = attack.poison(train_graphs, victims)
        t_poison = time.perf_counter() - t0
        model = new_model(cfg, ds)
        history = attack.train_backdoored(model, poisoned, ctx, victims)
        save_tensors(tmp / "poisoned.pt", pack_graphs(attack.final_training_set(ctx, victims, poisoned)))
        info = {
            "seconds": time.perf_counter() - t0,
            "poison_seconds": t_poison,
            "history": history,
            "victims": victims.tolist(),
        }
        save_tensors(tmp / "model.pt", model.state_dict())
        save_tensors(tmp / "trigger.pt", attack.state_dict())
        atomic_write_text(tmp / "info.json", json.dumps(info))

    folder, hit = cache.get_or_create("backdoor", backdoor_spec(cfg, ds), build)
    attack.load_state_dict(load_tensors(folder / "trigger.pt"))
    info = json.loads((folder / "info.json").read_text())
    info["cached"] = hit
    return attack, _load_model(cfg, ds, folder), info


def pack_graphs(graphs: list) -> dict[str, torch.Tensor]:
    """A list of graphs (x, edge_index, y) as a few flat tensors (state-dict style, ``weights_only`` safe)."""
    return {
        "x": torch.cat([g.x for g in graphs]),
        "edge_index": torch.cat([g.edge_index for g in graphs], 1),
        "num_nodes": torch.tensor([g.num_nodes for g in graphs]),
        "num_edges": torch.tensor([g.edge_index.size(1) for g in graphs]),
        "y": torch.cat([g.y.view(-1) for g in graphs]),
    }


def unpack_graphs(packed: dict[str, torch.Tensor]) -> list:
    from torch_geometric.data import Data

    xs = packed["x"].split(packed["num_nodes"].tolist())
    eis = packed["edge_index"].split(packed["num_edges"].tolist(), dim=1)
    return [Data(x=x, edge_index=ei, y=y.view(1)) for x, ei, y in zip(xs, eis, packed["y"])]


def poisoned_training_set(cfg: TrialConfig, ds: GraphDataset, cache: ArtifactCache) -> list:
    """The poisoned training set the backdoored model was trained on (GTA: with its final triggers)."""
    folder = cache.path("backdoor", backdoor_spec(cfg, ds))
    return unpack_graphs(load_tensors(folder / "poisoned.pt"))


def training_recipe(cfg: TrialConfig, ds: GraphDataset) -> TrainingRecipe:
    """What a training-time defender knows of the victim's training: backbone, settings, features."""
    return TrainingRecipe(lambda seed: new_model(cfg, ds, seed), cfg.train, ds.featurizer, ds.num_classes)


def defender_data(cfg: TrialConfig, ds: GraphDataset, split: GraphSplit, model: nn.Module) -> DefenderData:
    """The defender's clean set: the holding split, or as many graphs of an auxiliary dataset.

    Auxiliary graphs (GCleaner Table 5) are featurized with the target dataset's featurizer (degree mode:
    the same cap, so the feature dimension matches) and labelled with the suspect model's own predictions,
    since another dataset's labels mean nothing to this model (COLLAB even has 3 classes against AIDS' 2).
    """
    assert cfg.defense is not None
    aux = cfg.defense.auxiliary_dataset
    if aux is None:
        return DefenderData(ds.subset(split.holding), ds.num_classes, ds.featurizer)
    f = ds.featurizer
    aux_cfg = DataConfig(
        dataset=aux,
        feature_mode=f.mode,
        degree_cap=f.degree_cap,
        split_seed=cfg.data.split_seed,
        mirror=cfg.data.mirror,
        root=cfg.data.root,
    )
    aux_ds = load_graph_dataset(aux_cfg)
    if aux_ds.num_features != ds.num_features:
        raise ConfigError(
            "defense.auxiliary_dataset",
            aux,
            f"a dataset with {ds.num_features} node features like {ds.name} (it has {aux_ds.num_features})",
        )
    rng = np.random.default_rng(cfg.defense.seed)
    idx = rng.choice(len(aux_ds.graphs), size=min(len(split.holding), len(aux_ds.graphs)), replace=False)
    graphs = pseudo_labelled(model, [aux_ds.graphs[int(i)] for i in idx])
    return DefenderData(graphs, ds.num_classes, f)


def run_defense(
    cfg: TrialConfig, ds: GraphDataset, split: GraphSplit, cache: ArtifactCache, backdoored: GraphClassifier
) -> DefenseRun:
    """Run the configured defense: post-training on the backdoored model + clean set, or training-time on
    the poisoned training set in place of the victim's own training."""
    assert cfg.defense is not None
    defense = DEFENSES.get(cfg.defense.name)(cfg.defense)
    if isinstance(defense, TrainingDefense):
        if cfg.defense.auxiliary_dataset is not None:
            raise ConfigError(
                "defense.auxiliary_dataset",
                cfg.defense.auxiliary_dataset,
                f"none: {defense.name} trains on the poisoned training set, not on a clean set",
            )
        spec = artifact_keys.defended_spec(cfg)
        device = select_device(cfg.train.device)
        poisoned = poisoned_training_set(cfg, ds, cache)
        return run_training_time(defense, poisoned, training_recipe(cfg, ds), cache, spec, device)
    assert isinstance(defense, Defense)
    clean_set = defender_data(cfg, ds, split, backdoored)
    run = run_post_training(defense, backdoored, clean_set)
    run.n_defender = len(clean_set.graphs)
    return run


# ---- the trial -----------------------------------------------------------------------------------------
def _clean_metrics(
    res: TrialResult, cfg: TrialConfig, ds: GraphDataset, split: GraphSplit, cache: ArtifactCache, test: list
) -> GraphClassifier:
    """The clean model (trained or from the cache) and its test accuracy, training time and history."""
    clean, clean_info = clean_model(cfg, ds, split, cache)
    clean_eval = evaluate(clean, test, ds.num_classes)
    res.metrics.update(clean_eval.as_dict("clean_"))
    res.metrics["clean_train_seconds"] = clean_info["seconds"]
    res.history["clean"] = clean_info["history"]
    res.artifacts["per_class_acc"]["clean"] = clean_eval.per_class_acc
    return clean


def run_trial(cfg: TrialConfig, cache: ArtifactCache | None = None) -> TrialResult:
    """Run one trial and return its metrics. Metric names: ``<model>_<metric>``, model ∈ clean/backdoor/defended."""
    from gnnsec.data.registry import DATASETS

    if DATASETS.get(cfg.data.dataset).task == "node":  # Forget-and-Explain unlearning trial
        from gnnsec.node_trial import run_node_trial

        return run_node_trial(cfg, cache)
    cache = cache or ArtifactCache()
    res = TrialResult(config=cfg.to_dict())
    m = res.metrics
    t_start = time.perf_counter()
    ds = load_graph_dataset(cfg.data)
    split = ds.split(cfg.data)
    test = ds.subset(split.test)
    child = pipeline_clean.start(cfg, cache, ds, split)  # the clean model in a child process, if asked
    m.update(
        {
            "n_graphs": len(ds.graphs),
            "n_train": len(split.train),
            "n_holding": len(split.holding),
            "n_test": len(test),
        }
    )

    clean: GraphClassifier | None = None
    res.artifacts["per_class_acc"] = {}
    if child is None and artifact_keys.needs_clean_model(cfg):
        clean = _clean_metrics(res, cfg, ds, split, cache, test)
    if cfg.attack is None:
        m["trial_seconds"] = time.perf_counter() - t_start
        return res

    attack, backdoored, bd_info = backdoored_model(cfg, ds, split, cache, clean)
    if child is not None:  # the floor's clean model, now from the cache (the attack did not need it)
        pipeline_clean.wait(child)
        clean = _clean_metrics(res, cfg, ds, split, cache, test)
    target = cfg.attack.target_label
    victims_test = [g for g in test if int(g.y) != target]
    labels = torch.tensor([int(g.y) for g in victims_test], dtype=torch.long)
    attack.reseed(EVAL_SALT)
    triggered, trigger_masks = attack.inject_with_masks(victims_test)
    bd_eval = evaluate(backdoored, test, ds.num_classes)
    m.update(bd_eval.as_dict("backdoor_"))
    m.update(
        {
            f"backdoor_{k}": v
            for k, v in attack_success(
                backdoored, triggered, target, predict(backdoored, victims_test), labels
            ).items()
        }
    )
    if cfg.attack.clean_floor:
        assert clean is not None
        m.update(
            {
                f"clean_{k}": v
                for k, v in attack_success(
                    clean, triggered, target, predict(clean, victims_test), labels
                ).items()
            }
        )
    else:  # missing, not 0: the report says why
        res.artifacts["missing_metrics"] = {"clean_asr": FLOOR_SKIPPED}
    m.update(
        {
            "backdoor_train_seconds": bd_info["seconds"],
            "poison_seconds": bd_info["poison_seconds"],
            "n_poisoned": float(len(bd_info["victims"])),
            "trigger_nodes": float(attack.trigger_nodes),
            "backdoor_cached": float(bd_info["cached"]),
        }
    )
    res.history["backdoor"] = bd_info["history"]
    res.artifacts["per_class_acc"]["backdoor"] = bd_eval.per_class_acc

    if cfg.defense is not None:
        ev = BackdoorEval(test, victims_test, triggered, labels, target, ds.num_classes)
        run = run_defense(cfg, ds, split, cache, backdoored)
        m["defense_cached"] = float(run.cached)
        if run.n_defender is not None:
            m["n_defender"] = run.n_defender
        if run.flagged is not None:
            m.update(
                {
                    f"defense_{k}": v
                    for k, v in detection_metrics(
                        run.flagged, bd_info["victims"], len(split.train), run.scores
                    ).items()
                }
            )
        evaluate_defended(m, res, run, backdoored, ev)
        if not isinstance(run.model, InferenceWrapper):  # attribution needs a differentiable model
            m.update(verify_backdoor_unlearning(backdoored, run.model, triggered, trigger_masks, target))
    m["trial_seconds"] = time.perf_counter() - t_start
    return res
