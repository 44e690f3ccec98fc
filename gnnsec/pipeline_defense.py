"""The defense half of a trial: run a defense of any kind, then evaluate the defended model.

Part of the pipeline layer (only :mod:`gnnsec.pipeline` calls it). Two kinds are composed here:
- post-training (:class:`~gnnsec.defenses.Defense`): the backdoored model + the defender's clean set;
- training-time (:class:`~gnnsec.defenses.TrainingDefense`): the defender trains its own model on the
  poisoned training set, handed over as a plain list (:func:`~gnnsec.defenses.plain_graphs`) with the
  training recipe and a seed; the trained model is cached under the backdoor key plus the defense's name,
  version, full settings and seed; it is served through the defense's ``deploy`` (maybe an inference-time
  :class:`~gnnsec.defenses.InferenceWrapper`).
Only :class:`BackdoorEval` (built by the pipeline) knows the trigger, the target and the poisoned indices.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from gnnsec.artifact_keys import training_defense
from gnnsec.cache import ArtifactCache, atomic_write_text, load_tensors, save_tensors
from gnnsec.defenses import (
    DefenderData,
    Defense,
    InferenceWrapper,
    TrainingDefense,
    TrainingRecipe,
    plain_graphs,
)
from gnnsec.metrics import attack_success
from gnnsec.train import evaluate, make_loader, predict


@dataclass
class BackdoorEval:
    """Evaluation-side knowledge: test graphs, triggered non-target test graphs, their labels, the target."""

    test: list[Data]
    victims_test: list[Data]
    triggered: list[Data]
    labels: Tensor
    target: int
    num_classes: int


@dataclass
class DefenseRun:
    """What a defense produced, whatever its kind."""

    model: nn.Module
    seconds: float
    metrics: dict[str, float]
    history: list[dict[str, float]]
    recovered_injector: Callable[[Sequence[Data]], list[Data]] | None = None
    flagged: list[int] | None = None
    cached: bool = False
    scores: list[float] | None = None
    n_defender: int | None = None  # size of the post-training defender's clean set


def defense_spec(defense: Any, base: dict[str, Any]) -> dict[str, Any]:
    """Cache key of a training-time defense's model: the backdoor key + the defense (name, version, settings)."""
    return {**base, "training_defense": training_defense(type(defense), defense.params, defense.cfg.seed)}


def run_post_training(defense: Defense, backdoored: nn.Module, clean_set: DefenderData) -> DefenseRun:
    t0 = time.perf_counter()
    outcome = defense.defend(copy.deepcopy(backdoored), clean_set)
    seconds = time.perf_counter() - t0
    return DefenseRun(
        outcome.model.eval(), seconds, outcome.metrics, outcome.history, outcome.recovered_injector
    )


def run_training_time(
    defense: TrainingDefense,
    poisoned_train: list[Data],
    recipe: TrainingRecipe,
    cache: ArtifactCache,
    spec: dict[str, Any],
    device: torch.device,
) -> DefenseRun:
    """Train (or load from the cache) the defender's own model on the poisoned set; deploy it."""
    seed = int(defense.cfg.seed)
    graphs = plain_graphs(poisoned_train)

    def build(tmp: Path) -> None:
        t0 = time.perf_counter()
        outcome = defense.train(graphs, recipe, seed)
        info = {
            "seconds": time.perf_counter() - t0,
            "flagged": None if outcome.flagged is None else [int(i) for i in outcome.flagged],
            "metrics": outcome.metrics,
            "history": outcome.history,
            "scores": outcome.scores,
        }
        save_tensors(tmp / "model.pt", outcome.model.state_dict())
        atomic_write_text(tmp / "info.json", json.dumps(info))

    folder, hit = cache.get_or_create("defended", spec, build)
    info = json.loads((folder / "info.json").read_text())
    model = recipe.new_model(seed)
    model.load_state_dict(load_tensors(folder / "model.pt"))
    deployed = defense.deploy(model.to(device).eval(), recipe, seed).eval()
    return DefenseRun(
        deployed,
        info["seconds"],
        info["metrics"],
        info["history"],
        None,
        info["flagged"],
        hit,
        info.get("scores"),
    )


def detection_metrics(
    flagged: Sequence[int], victims: Sequence[int], n_train: int, scores: Sequence[float] | None = None
) -> dict[str, float]:
    """Precision, recall, F1 of the flagged/isolated training graphs against the true poisoned set, and the
    AUROC of the defense's suspicion scores (when it has them)."""
    f, v = set(int(i) for i in flagged), set(int(i) for i in victims)
    tp = len(f & v)
    precision = tp / len(f) if f else float("nan")
    recall = tp / len(v) if v else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if f and v and tp else 0.0
    out = {}
    if scores is not None and len(scores) == n_train and 0 < len(v) < n_train:
        from sklearn.metrics import roc_auc_score

        truth = np.zeros(n_train, dtype=bool)
        truth[list(v)] = True
        out["detect_auroc"] = float(roc_auc_score(truth, np.asarray(scores)))
    return out | {
        "detect_flagged": float(len(f)),
        "detect_true_positives": float(tp),
        "detect_precision": precision,
        "detect_recall": recall,
        "detect_f1": f1,
        "detect_base_rate": len(v) / max(n_train, 1),
    }


def embeddings(model: nn.Module, graphs: list) -> np.ndarray:
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for b in make_loader(graphs, 256):
            b = b.to(device)
            out.append(model.forward_full(b.x, b.edge_index, b.batch).embedding.cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


def evaluate_defended(m: dict, res: Any, run: DefenseRun, backdoored: nn.Module, ev: BackdoorEval) -> None:
    """ACC, ASR, clean-correct ASR of the defended model; the defense's diagnostics; embeddings."""
    defended = run.model
    def_eval = evaluate(defended, ev.test, ev.num_classes)
    m.update(def_eval.as_dict("defended_"))
    m.update(
        {
            f"defended_{k}": v
            for k, v in attack_success(
                defended, ev.triggered, ev.target, predict(defended, ev.victims_test), ev.labels
            ).items()
        }
    )
    m["defense_seconds"] = run.seconds
    m.update({f"defense_{k}": v for k, v in run.metrics.items()})
    if isinstance(defended, InferenceWrapper):
        m.update({f"defended_{k}": v for k, v in defended.diagnostics(ev.test).items()})
        m.update({f"defended_triggered_{k}": v for k, v in defended.diagnostics(ev.triggered).items()})
    res.history["defense"] = run.history
    res.artifacts["per_class_acc"]["defended"] = def_eval.per_class_acc
    if run.recovered_injector is not None:
        _recovery_metrics(m, backdoored, run.recovered_injector, ev.victims_test, ev.triggered, ev.target)
    res.artifacts["embeddings"] = {
        "labels": [int(g.y) for g in ev.test],
        "target": ev.target,
        "backdoor_clean": embeddings(backdoored, ev.test).tolist(),
        "backdoor_triggered": embeddings(backdoored, ev.triggered).tolist(),
        "defended_clean": embeddings(defended, ev.test).tolist(),
        "defended_triggered": embeddings(defended, ev.triggered).tolist(),
    }


def _recovery_metrics(m: dict, backdoored: nn.Module, injector, victims_test, triggered, target: int) -> None:  # noqa: ANN001
    """Recovery-ASR and real-vs-recovered trigger similarity (GCleaner Table 4), evaluation side only."""
    recovered = injector(victims_test)
    m.update({f"recovery_{k}": v for k, v in attack_success(backdoored, recovered, target).items()})
    real_emb = torch.as_tensor(embeddings(backdoored, triggered))
    rec_emb = torch.as_tensor(embeddings(backdoored, recovered))
    if len(real_emb):
        m["recovery_similarity"] = float(nn.functional.cosine_similarity(real_emb, rec_emb, dim=-1).mean())
