"""Graph-classification backbones: GCN, GAT, GIN, GraphSAGE with a readout and an MLP head.

Every backbone returns, in one forward pass and without hooks, the logits, the graph embedding (the
readout) and each layer's node activations (``forward_full``), which the similarity loss (GCleaner Eq. 7)
and the multi-layer Grad-CAM loss (Eq. 10-14) need. ``forward`` returns logits only, which is the signature
PyG's ``torch_geometric.explain`` expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.nn import GCNConv, global_add_pool, global_max_pool, global_mean_pool

from gnnsec.models.layers import WeightedGATConv, WeightedGINConv, WeightedSAGEConv
from gnnsec.registry import GRAPH_MODELS as _GRAPH_MODELS
from gnnsec.registry import Registry

POOLS = {"mean": global_mean_pool, "sum": global_add_pool, "max": global_max_pool}


@dataclass
class ModelOutput:
    logits: Tensor
    embedding: Tensor  # [num_graphs, hidden]: the readout of the last layer
    node_activations: list[Tensor]  # one [num_nodes, hidden] tensor per message-passing layer


class LogitsModule(nn.Module):
    """A graph classifier's interface: :meth:`forward_full` gives logits, readout and layer activations;
    ``forward`` (what PyG's explainers and the evaluation call) gives the logits alone."""

    def forward_full(
        self, x: Tensor, edge_index: Tensor, batch: Tensor | None = None, edge_weight: Tensor | None = None
    ) -> ModelOutput:
        raise NotImplementedError

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        batch: Tensor | None = None,
        edge_weight: Tensor | None = None,
        **_: object,
    ) -> Tensor:
        return self.forward_full(x, edge_index, batch, edge_weight).logits


class GraphClassifier(LogitsModule):
    """Stack of message-passing layers (ReLU), readout, then a two-layer MLP classifier."""

    default_pooling = "mean"
    version: ClassVar[int] = 1  # goes into cache keys: bump when the backbone's behaviour changes

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        hidden: int = 64,
        num_layers: int = 3,
        dropout: float = 0.0,
        pooling: str | None = None,
    ) -> None:
        super().__init__()
        self.in_dim, self.num_classes, self.hidden, self.num_layers = in_dim, num_classes, hidden, num_layers
        self.pooling = pooling or self.default_pooling
        self.dropout = dropout
        self.convs = nn.ModuleList(
            self.make_conv(in_dim if i == 0 else hidden, hidden) for i in range(num_layers)
        )
        self.head = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
        )

    def make_conv(self, in_dim: int, out_dim: int) -> nn.Module:
        raise NotImplementedError

    def forward_full(
        self, x: Tensor, edge_index: Tensor, batch: Tensor | None = None, edge_weight: Tensor | None = None
    ) -> ModelOutput:
        if batch is None:
            batch = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
        h, acts = x, []
        for conv in self.convs:
            h = torch.relu(conv(h, edge_index, edge_weight=edge_weight))
            if self.dropout > 0:  # p = 0 is the identity: skip the call
                h = nn.functional.dropout(h, self.dropout, self.training)
            acts.append(h)
        emb = POOLS[self.pooling](h, batch)
        return ModelOutput(self.head(emb), emb, acts)

    def classify_embedding(self, emb: Tensor) -> Tensor:
        return self.head(emb)


GRAPH_MODELS: Registry[type[GraphClassifier]] = _GRAPH_MODELS  # declared in gnnsec.registry


@GRAPH_MODELS.register("GCN")
class GCN(GraphClassifier):
    name = "GCN"

    def make_conv(self, in_dim: int, out_dim: int) -> nn.Module:
        return GCNConv(in_dim, out_dim)


@GRAPH_MODELS.register("GAT")
class GAT(GraphClassifier):
    """GAT with 4 heads whose outputs are averaged (keeps the width at ``hidden``)."""

    name = "GAT"

    def make_conv(self, in_dim: int, out_dim: int) -> nn.Module:
        return WeightedGATConv(in_dim, out_dim, heads=4, concat=False)


@GRAPH_MODELS.register("GIN")
class GIN(GraphClassifier):
    """GIN (Xu et al. 2019): MLP(hidden) per layer, sum readout."""

    name = "GIN"
    default_pooling = "sum"

    def make_conv(self, in_dim: int, out_dim: int) -> nn.Module:
        mlp = nn.Sequential(
            nn.Linear(in_dim, out_dim), nn.BatchNorm1d(out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim)
        )
        return WeightedGINConv(mlp, train_eps=True)


@GRAPH_MODELS.register("GraphSAGE")
class GraphSAGE(GraphClassifier):
    name = "GraphSAGE"

    def make_conv(self, in_dim: int, out_dim: int) -> nn.Module:
        return WeightedSAGEConv(in_dim, out_dim)


def build_graph_model(name: str, in_dim: int, num_classes: int, **kwargs: object) -> GraphClassifier:
    return GRAPH_MODELS.get(name, "model.name")(in_dim, num_classes, **kwargs)
