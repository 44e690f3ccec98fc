"""The one full-batch training loop for node classification (Forget and Explain, section 4: Adam,
lr 0.005, 100 epochs, masked cross-entropy). Seeded; used by the base model and the Retrain unlearner."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from gnnsec.config import DEFAULT_EPOCHS, TrainConfig
from gnnsec.train import seed_everything, select_device


def node_logits(model: nn.Module, graph: Data, **kw: object) -> Tensor:
    return model(graph.x, graph.edge_index, node_ids=getattr(graph, "node_ids", None), **kw)


def fit_nodes(
    model: nn.Module,
    graph: Data,
    cfg: TrainConfig,
    mask: Tensor | None = None,
    epochs: int | None = None,
    params: list[nn.Parameter] | None = None,
    extra_loss: Callable[[Tensor], Tensor] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place on ``graph``'s ``mask`` nodes (default ``train_mask``); return the history."""
    device = select_device(cfg.device)
    seed_everything(cfg.seed)
    model.to(device)
    graph = graph.to(device)
    mask = (graph.train_mask if mask is None else mask).to(device)
    opt = torch.optim.Adam(
        params if params is not None else model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    history = []
    n = epochs if epochs is not None else (cfg.epochs or DEFAULT_EPOCHS)
    for epoch in range(n):
        model.train()
        opt.zero_grad()
        logits = node_logits(model, graph)
        loss = nn.functional.cross_entropy(logits[mask], graph.y[mask])
        if extra_loss is not None:
            loss = loss + extra_loss(logits)
        loss.backward()
        opt.step()
        history.append({"epoch": float(epoch), "loss": float(loss.detach())})
    model.eval()
    return history


@torch.no_grad()
def node_accuracy(model: nn.Module, graph: Data, mask: Tensor) -> float:
    model.eval()
    pred = node_logits(model, graph).argmax(-1)
    mask = mask.to(pred.device)
    return float((pred[mask] == graph.y.to(pred.device)[mask]).float().mean()) if mask.any() else float("nan")
