"""GCleaner (section 4): recover a trigger from the backdoored model, then unlearn it by distillation.

The defender holds the backdoored model and a small clean set (:class:`DefenderData`) and nothing else.
It splits the clean set into a *fit* part (recovery and unlearning) and a *validation* part, on which it
measures what it can: accuracy, and the flip rate of the recovered trigger (how many correctly classified
graphs the trigger sends to one common class, :func:`~gnnsec.defenses.gcleaner.recovery.flip_rate`). The
recovered trigger is returned as ``recovered_injector`` so the evaluation side, which alone knows the real
trigger, can measure Recovery-ASR and real-vs-recovered similarity (Table 4).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from sklearn.model_selection import train_test_split
from torch import nn
from torch_geometric.data import Data

from gnnsec.defenses.base import DefenderData, Defense, DefenseOutcome
from gnnsec.defenses.gcleaner.params import DEFAULTS, GCleanerParams, validate
from gnnsec.defenses.gcleaner.recovery import FlipStats, flip_rate, recover
from gnnsec.defenses.gcleaner.unlearning import make_teacher, unlearn
from gnnsec.defenses.registry import DEFENSES
from gnnsec.train import evaluate, predict

log = logging.getLogger(__name__)


def split_clean(graphs: Sequence[Data], val_fraction: float, seed: int) -> tuple[list[Data], list[Data]]:
    """Seeded, label-stratified split of the defender's clean graphs into (fit, validation)."""
    graphs = list(graphs)
    n_val = int(round(val_fraction * len(graphs)))
    if n_val == 0 or len(graphs) - n_val < 2:
        return graphs, []
    labels = np.array([int(g.y) for g in graphs])
    counts = np.bincount(labels)
    classes = int((counts > 0).sum())
    stratify = labels if counts[counts > 0].min() >= 2 and classes <= n_val <= len(graphs) - classes else None
    fit_idx, val_idx = train_test_split(
        np.arange(len(graphs)), test_size=n_val, random_state=seed, stratify=stratify
    )
    return [graphs[i] for i in sorted(fit_idx)], [graphs[i] for i in sorted(val_idx)]


@DEFENSES.register("gcleaner")
class GCleaner(Defense):
    name = "gcleaner"
    param_defaults: ClassVar[dict[str, Any]] = DEFAULTS

    def __init__(self, cfg) -> None:  # noqa: ANN001
        super().__init__(cfg)
        self.settings = GCleanerParams.from_dict(dict(cfg.params))

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        validate(params)

    def defend(self, model: nn.Module, clean: DefenderData) -> DefenseOutcome:
        p, seed = self.settings, self.cfg.seed
        model = model.eval()
        graphs = _pseudo_labelled(model, clean.graphs) if p.pseudo_labels else list(clean.graphs)
        fit_graphs, val_graphs = split_clean(graphs, p.val_fraction, seed)
        log.info("gcleaner: %d fit / %d validation clean graphs", len(fit_graphs), len(val_graphs))

        t0 = time.perf_counter()
        rec = recover(model, fit_graphs, clean.featurizer, clean.num_classes, p, seed)
        fit_triggered = rec.trigger.inject(fit_graphs, rec.placement)
        val_triggered = rec.trigger.inject(val_graphs) if val_graphs else []
        recovery_seconds = time.perf_counter() - t0
        target = rec.flip.target  # the defender's estimate of the backdoor's class (never the real one)

        def signals(m: nn.Module) -> dict[str, float]:
            out = {
                "fit_flip": _rate(flip_rate(m, fit_graphs, fit_triggered, clean.num_classes, target)),
            }
            out["val_acc"] = evaluate(m, val_graphs).acc  # NaN without a validation part
            out["val_flip"] = _rate(flip_rate(m, val_graphs, val_triggered, clean.num_classes, target))
            return out

        before = signals(model)
        t1 = time.perf_counter()
        teacher = make_teacher(model, fit_graphs, p, seed)
        student = copy.deepcopy(model)
        history = unlearn(
            student, teacher, fit_graphs, fit_triggered, p, seed, on_epoch=lambda e, row: signals(student)
        )
        unlearn_seconds = time.perf_counter() - t1
        after = signals(student)

        metrics: dict[str, float] = {
            "recovery_seconds": recovery_seconds,
            "unlearn_seconds": unlearn_seconds,
            "recovery_loss": rec.loss,
            "recovery_own_similarity": rec.similarity,
            "recovery_own_flip": rec.flip.rate,
            "recovery_flip_class": float(target),
            "chosen_restart": float(rec.restart),
            "n_fit": float(len(fit_graphs)),
            "n_val": float(len(val_graphs)),
        }
        for key, value in before.items():
            metrics[f"{key}_before"] = value
        for key, value in after.items():
            metrics[f"{key}_after"] = value
        for row in rec.restarts:
            r = int(row["restart"])
            metrics[f"restart{r}_flip"] = row["flip"]
            metrics[f"restart{r}_similarity"] = row["similarity"]
        return DefenseOutcome(student.eval(), metrics, history, rec.trigger.inject)


def _pseudo_labelled(model: nn.Module, graphs: Sequence[Data]) -> list[Data]:
    """Copies of ``graphs`` labelled with ``model``'s predictions."""
    out = []
    for g, pred in zip(graphs, predict(model, graphs)):
        g = g.clone()
        g.y = pred.view(1)
        out.append(g)
    return out


def _rate(stats: FlipStats) -> float:
    return stats.rate
