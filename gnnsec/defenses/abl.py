"""Anti-Backdoor Learning (Li et al., NeurIPS 2021, "Anti-backdoor learning: training clean models on
poisoned data"), transferred to graphs as in GCleaner 5.1 "Baseline" / Table 3.

Two stages over the recipe's epoch budget E:
1. **Isolation** (epochs ``0 .. T_isolate``): train with the local gradient ascent loss
   ``L_LGA = sign(L − γ)·L`` (ABL Eq. 3): once a batch's loss falls below γ it is pushed back up, so clean
   graphs hover around γ while backdoored graphs, learned faster, still end up with lower loss. Then the
   ``isolation_ratio`` fraction of training graphs with the lowest loss forms the isolated set D_b.
2. **Unlearning** (ABL Eq. 4, ``L = L(D_c) − L(D_b)``), split over epochs as ABL's reference code does:
   the remaining epochs but the last ``unlearn_epochs`` train on D_c (the rest) with cross-entropy, then
   each of the last ``unlearn_epochs`` is one pass of gradient ascent (−cross-entropy) over D_b, with the
   smaller learning rate ``unlearn_lr``. (Summing ``L(D_c) − L(D_b)`` in every step instead makes the
   ascent term unbounded over ~1000 steps and collapsed the model to one class in our AIDS runs.)

Defaults are ABL's: γ = 0.5, T_isolate = 20, isolation ratio 1%, 20 unlearning epochs, unlearning lr 5e-4.
The isolated indices are returned as ``flagged`` so the evaluation (which alone knows the poisoned set)
can report how many were truly poisoned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from gnnsec.defenses.kinds import TrainingDefense, TrainingOutcome, TrainingRecipe
from gnnsec.defenses.registry import DEFENSES
from gnnsec.errors import ConfigError
from gnnsec.train import cross_entropy_loss, fit, predict_logits, select_device


def lga_loss(gamma: float) -> Any:
    """ABL's local gradient ascent: ``sign(L − γ)·L`` on the batch loss."""

    def loss(model: nn.Module, batch: Batch) -> Tensor:
        ce = cross_entropy_loss(model, batch)
        return torch.sign(ce.detach() - gamma) * ce

    return loss


def ascent_loss(model: nn.Module, batch: Batch) -> Tensor:
    """``−L(D_b batch)``: gradient ascent on the isolated graphs (the second term of ABL Eq. 4)."""
    return -cross_entropy_loss(model, batch)


def per_graph_loss(model: nn.Module, graphs: list[Data], batch_size: int = 256) -> Tensor:
    """Cross-entropy of each graph w.r.t. its label (on CPU, in the order given)."""
    labels = torch.cat([g.y.view(-1) for g in graphs])
    return nn.functional.cross_entropy(predict_logits(model, graphs, batch_size), labels, reduction="none")


@DEFENSES.register("abl")
class ABL(TrainingDefense):
    name = "abl"
    version: ClassVar[int] = 1
    param_defaults: ClassVar[dict[str, Any]] = {
        "gamma": 0.5,
        "isolation_epochs": 20,
        "isolation_ratio": 0.01,
        "unlearn_epochs": 20,
        "unlearn_lr": 5e-4,
    }

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        super().validate_params(params)
        if "isolation_ratio" in params and not 0.0 < float(params["isolation_ratio"]) < 1.0:
            raise ConfigError(
                "defense.params.isolation_ratio", params["isolation_ratio"], "a ratio in (0, 1)"
            )
        for key in ("isolation_epochs", "unlearn_epochs"):
            if key in params and int(params[key]) < 0:
                raise ConfigError(f"defense.params.{key}", params[key], "a non-negative epoch count")

    @classmethod
    def training_epochs(cls, params: Mapping[str, Any], epochs: int) -> float:
        """Isolation and clean-training epochs over (nearly) all graphs; unlearning only over D_b."""
        t_iso = min(int(params["isolation_epochs"]), epochs)
        t_ul = min(int(params["unlearn_epochs"]), epochs - t_iso)
        return float(epochs - t_ul) + t_ul * float(params["isolation_ratio"])

    def train(self, graphs: list[Data], recipe: TrainingRecipe, seed: int) -> TrainingOutcome:
        p = self.params
        total = int(recipe.train.epochs or 0)
        t_iso = min(int(p["isolation_epochs"]), total)
        t_ul = min(int(p["unlearn_epochs"]), total - t_iso)
        t_mid = total - t_iso - t_ul
        model = recipe.new_model(seed).to(select_device(recipe.train.device))
        history = fit(
            model,
            graphs,
            recipe.train_cfg(seed, epochs=max(t_iso, 1)),
            loss_fn=lga_loss(float(p["gamma"])),
            desc="abl/isolate",
        )
        for row in history:
            row["stage"] = 0.0
        losses = per_graph_loss(model, graphs)
        n_iso = max(1, int(math.ceil(float(p["isolation_ratio"]) * len(graphs))))
        isolated = np.sort(losses.argsort(stable=True)[:n_iso].numpy())
        mask = np.ones(len(graphs), dtype=bool)
        mask[isolated] = False
        rest = [g for g, keep in zip(graphs, mask) if keep]
        if t_mid > 0:
            rows = fit(model, rest, recipe.train_cfg(seed + 1, epochs=t_mid), desc="abl/train")
            history += [{**r, "stage": 1.0} for r in rows]
        if t_ul > 0:
            iso_graphs = [graphs[int(i)] for i in isolated]
            cfg = recipe.train_cfg(seed + 2, epochs=t_ul, lr=float(p["unlearn_lr"]), step_size=max(t_ul, 1))
            rows = fit(model, iso_graphs, cfg, loss_fn=ascent_loss, desc="abl/unlearn")
            history += [{**r, "stage": 2.0} for r in rows]
        metrics = {
            "isolated": float(n_iso),
            "isolated_loss_max": float(losses[isolated].max()),
            "train_loss_median": float(losses.median()),
        }
        return TrainingOutcome(model, isolated.tolist(), metrics, history, (-losses).tolist())
