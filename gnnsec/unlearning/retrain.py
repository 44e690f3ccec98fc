"""Retrain (Forget and Explain, section 3): train a fresh model from scratch on the graph without the
forget nodes, with the base model's recipe and seed. The exact-unlearning reference every other
unlearner's time is compared with."""

from __future__ import annotations

from torch import nn
from torch_geometric.data import Data

from gnnsec.train_nodes import fit_nodes
from gnnsec.unlearning.base import Unlearner, UnlearnRequest, remove_nodes
from gnnsec.unlearning.registry import UNLEARNERS


@UNLEARNERS.register("retrain")
class Retrain(Unlearner):
    name = "retrain"

    def _unlearn(self, req: UnlearnRequest) -> tuple[nn.Module, Data, dict[str, float]]:
        served = remove_nodes(req.graph, req.forget)
        model = req.new_model()
        history = fit_nodes(model, served, req.train)
        return model, served, {"final_loss": history[-1]["loss"] if history else float("nan")}
