"""The clean model an attack keeps to place its trigger at injection time (Exp-BA, Motif-BA).

Exp-BA explains every graph with a clean pretrained model (GNNExplainer) and Motif-BA scores node drops
with a shadow model, at poisoning time and again whenever test graphs are triggered. The pipeline rebuilds a
cached attack with ``load_state_dict`` only, so the model is stored inside the attack's state as its
architecture (plain values) plus its state dict (tensors), and rebuilt from the model registry.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn

from gnnsec.models import GraphClassifier, build_graph_model
from gnnsec.train import fit

log = logging.getLogger(__name__)


def obtain_clean_model(ctx: Any) -> GraphClassifier:
    """``ctx.clean_model`` (copied, eval mode); without one, train a model of the victim's recipe on the
    clean training graphs, as the attacker's own pretrained/shadow model."""
    if ctx.clean_model is not None:
        model = copy.deepcopy(ctx.clean_model)
    else:
        log.info("no clean model in the attack context: training one on the clean training graphs")
        model = ctx.model_factory()
        fit(model, ctx.train_graphs, ctx.train_cfg, desc="attacker-clean")
    return model.eval()


def model_state(model: nn.Module) -> dict[str, Any]:
    """Architecture (plain values) and weights (CPU tensors) of a registered graph classifier."""
    arch = {
        "name": type(model).name,
        "in_dim": int(model.in_dim),
        "num_classes": int(model.num_classes),
        "hidden": int(model.hidden),
        "num_layers": int(model.num_layers),
        "dropout": float(model.dropout),
        "pooling": str(model.pooling),
    }
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {"arch": arch, "weights": weights}


def model_from_state(state: dict[str, Any], device: torch.device | None = None) -> GraphClassifier:
    arch = dict(state["arch"])
    name, in_dim, num_classes = arch.pop("name"), arch.pop("in_dim"), arch.pop("num_classes")
    model = build_graph_model(name, in_dim, num_classes, **arch)
    model.load_state_dict(state["weights"])
    if device is not None:
        model = model.to(device)
    return model.eval()


def derived_seed(generator: torch.Generator) -> int:
    """A seed drawn from the attack's own stream (for algorithms that use torch's global RNG)."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
