"""Node-importance explainers: a score per node of every graph in a batch (higher = more important).

Used by Exp-BA (top-k most important nodes), Motif-BA (injection positions) and GCleaner's trigger recovery
(the n least important nodes, section 4.3; Table 4 compares Random, GNNExplainer, PGExplainer, SubgraphX).
One registry, one call signature: ``explainer(model, batch, **options) -> Tensor[num_nodes]``.

Registered here: "random", "gnnexplainer", "pgexplainer"; "subgraphx" lives in
:mod:`gnnsec.explain.subgraphx`. Every explainer runs the model in eval mode with its parameters frozen (an
explainer's own ``backward`` never touches the model's ``.grad``) and restores both afterwards; the
stochastic ones take a ``generator`` for reproducible results.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.explain import Explainer, GNNExplainer, PGExplainer
from torch_geometric.utils import scatter

from gnnsec.explain.utils import eval_frozen, seeded
from gnnsec.registry import Registry

log = logging.getLogger(__name__)

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
    model: nn.Module,
    batch: Batch,
    epochs: int = 100,
    lr: float = 0.01,
    chunk: int = 32,
    generator: torch.Generator | None = None,
    **_: Any,
) -> Tensor:
    """GNNExplainer (Ying et al. 2019) through ``torch_geometric.explain``: one learned mask value per node.

    The model's own prediction is explained (``explanation_type="model"``). Graphs are explained in chunks
    of ``chunk`` graphs, each with one optimisation over the chunk's node masks (node masks of different
    graphs do not interact except through the shared mean in the loss). PyG draws the mask initialisation
    from the global RNG; with a ``generator`` that RNG is seeded from it inside a forked RNG scope, so the
    result is reproducible and the caller's global RNG stream is left untouched.
    """
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
    with eval_frozen(model), seeded(generator, batch.x.device):
        for start in range(0, len(graphs), chunk):
            part = Batch.from_data_list(graphs[start : start + chunk]).to(batch.x.device)
            explanation = explainer(part.x, part.edge_index, batch=part.batch)
            lo = int(batch.ptr[start])
            scores[lo : lo + part.num_nodes] = explanation.node_mask.view(-1).detach()
    return scores


def edge_to_node_importance(
    edge_mask: Tensor, edge_index: Tensor, num_nodes: int, reduce: str = "max"
) -> Tensor:
    """A node's importance from the masks of its incident edges (both directions). With ``reduce="max"``
    (default) a node scores the largest threshold t at which it still belongs to the explanation subgraph
    {edges with mask ≥ t} (PGExplainer's explanation is the top-edge subgraph); "mean" and "sum" are the
    alternatives. Isolated nodes get 0, the lowest possible mask value."""
    index = torch.cat([edge_index[0], edge_index[1]])
    values = torch.cat([edge_mask, edge_mask])
    return scatter(values, index, dim=0, dim_size=num_nodes, reduce=reduce)


@NODE_EXPLAINERS.register("pgexplainer")
def pgexplainer_importance(
    model: nn.Module,
    batch: Batch,
    epochs: int = 30,
    lr: float = 0.003,
    reduce: str = "max",
    target: Tensor | None = None,
    generator: torch.Generator | None = None,
    **_: Any,
) -> Tensor:
    """PGExplainer (Luo et al. 2020) through PyG's ``PGExplainer`` (phenomenon explanations, edge masks).

    The explainer MLP (edge embedding [z_u ‖ z_v] → mask logit) is trained for ``epochs`` full-batch steps on
    the given batch with PyG's objective (cross-entropy of the masked prediction + size and entropy
    regularisers, temperature schedule 5 → 2; the size term rescaled so that the batch loss is the mean of
    the per-graph objectives), explaining ``target`` (default: the model's own predicted
    class, so the model's decision is explained, as for GNNExplainer). The edge mask is turned into node
    importance by :func:`edge_to_node_importance` (``reduce``). Seeded through ``generator`` (the MLP
    initialisation and the concrete-distribution noise draw from the global RNG inside a forked scope).
    """
    device = batch.x.device
    if batch.num_edges == 0:
        return torch.zeros(batch.num_nodes, device=device)
    with eval_frozen(model), seeded(generator, device):
        if target is None:
            with torch.no_grad():
                target = model(batch.x, batch.edge_index, batch.batch).argmax(-1)
        algorithm = PGExplainer(epochs=epochs, lr=lr).to(device)
        # PyG adds edge_size · Σ_edges σ(mask) to a cross-entropy that is a mean over graphs, so on a batch the
        # size penalty grows with the batch and drives every mask to 0. Scaling it by 1/B makes the batch loss
        # the mean of the per-graph PGExplainer objectives. (An instance dict: PyG's ``coeffs`` is a class
        # attribute that ``PGExplainer(**kwargs)`` would mutate for every instance.)
        algorithm.coeffs = {
            **PGExplainer.coeffs,
            "edge_size": PGExplainer.coeffs["edge_size"] / batch.num_graphs,
        }
        explainer = Explainer(
            model=model,
            algorithm=algorithm,
            explanation_type="phenomenon",
            edge_mask_type="object",
            model_config=_graph_config(),
        )
        for epoch in range(epochs):
            loss = algorithm.train(epoch, model, batch.x, batch.edge_index, target=target, batch=batch.batch)
        log.debug("PGExplainer: final training loss %.4f", loss)
        explanation = explainer(batch.x, batch.edge_index, target=target, batch=batch.batch)
    edge_mask = explanation.edge_mask.detach()
    return edge_to_node_importance(edge_mask, batch.edge_index, batch.num_nodes, reduce)


def node_importance(name: str, model: nn.Module, batch: Batch, **kwargs: Any) -> Tensor:
    return NODE_EXPLAINERS.get(name, "explainer")(model, batch, **kwargs)
