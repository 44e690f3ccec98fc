"""Node-importance explainers: a score per node of every graph in a batch (higher = more important).

Used by Exp-BA (top-k most important nodes), Motif-BA (injection positions) and GCleaner's trigger recovery
(the n least important nodes, section 4.3). One registry, one call signature:
``explainer(model, batch) -> Tensor[num_nodes]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.explain import Explainer, GNNExplainer

from gnnsec.registry import Registry

NodeImportance = Callable[..., Tensor]
NODE_EXPLAINERS: Registry[NodeImportance] = Registry("node explainer")


def _graph_config() -> dict[str, Any]:
    return {"mode": "multiclass_classification", "task_level": "graph", "return_type": "raw"}


@NODE_EXPLAINERS.register("random")
def random_importance(
    model: nn.Module, batch: Batch, generator: torch.Generator | None = None, **_: Any
) -> Tensor:
    """Uniform random scores (the "Random" row of GCleaner Table 4)."""
    return torch.rand(batch.num_nodes, generator=generator).to(batch.x.device)


@NODE_EXPLAINERS.register("gnnexplainer")
def gnnexplainer_importance(
    model: nn.Module, batch: Batch, epochs: int = 100, lr: float = 0.01, chunk: int = 32, **_: Any
) -> Tensor:
    """GNNExplainer (Ying et al. 2019) through ``torch_geometric.explain``: one learned mask value per node.

    The model's own prediction is explained (``explanation_type="model"``). Graphs are explained in chunks
    of ``chunk`` graphs, each with one optimisation over the chunk's node masks (node masks of different
    graphs do not interact except through the shared mean in the loss).
    """
    was_training = model.training
    model.eval()
    explainer = Explainer(
        model=model,
        algorithm=GNNExplainer(epochs=epochs, lr=lr),
        explanation_type="model",
        node_mask_type="object",
        edge_mask_type=None,
        model_config=_graph_config(),
    )
    scores = torch.empty(batch.num_nodes, device=batch.x.device)
    graphs = batch.to_data_list()
    for start in range(0, len(graphs), chunk):
        part = Batch.from_data_list(graphs[start : start + chunk]).to(batch.x.device)
        explanation = explainer(part.x, part.edge_index, batch=part.batch)
        lo = int(batch.ptr[start])
        scores[lo : lo + part.num_nodes] = explanation.node_mask.view(-1).detach()
    model.train(was_training)
    return scores


def node_importance(name: str, model: nn.Module, batch: Batch, **kwargs: Any) -> Tensor:
    return NODE_EXPLAINERS.get(name, "explainer")(model, batch, **kwargs)
