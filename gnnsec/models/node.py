"""Node-classification backbones (Forget and Explain, section 4: 2 layers, 64 hidden, ReLU, dropout 0.5).

``num_layers`` message-passing layers (the last one maps to the classes), ReLU and dropout between them.
``forward(x, edge_index, hook=...)`` lets an unlearner rewrite each layer's output (GNNDelete's deletion
operator); any other keyword (e.g. ``node_ids`` of a served graph) is accepted and ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GCNConv, SAGEConv

from gnnsec.registry import Registry

NODE_MODELS: Registry[type[nn.Module]] = Registry("node model")

LayerHook = Callable[[int, Tensor], Tensor]


class NodeClassifier(nn.Module):
    version: ClassVar[int] = 1  # bump when the backbone's behaviour changes (cache keys)

    def __init__(
        self, in_dim: int, num_classes: int, hidden: int = 64, num_layers: int = 2, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.dropout = dropout
        self.num_layers = num_layers
        dims = [in_dim] + [hidden] * (num_layers - 1) + [num_classes]
        self.convs = nn.ModuleList(
            self.make_conv(dims[i], dims[i + 1], last=i == num_layers - 1) for i in range(num_layers)
        )

    @property
    def layer_dims(self) -> list[int]:
        """Output width of each layer."""
        return [int(c.out_channels) for c in self.convs]

    def make_conv(self, in_dim: int, out_dim: int, last: bool = False) -> nn.Module:
        raise NotImplementedError

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor | None = None,
        hook: LayerHook | None = None,
        **_: object,
    ) -> Tensor:
        kw = {"edge_weight": edge_weight} if edge_weight is not None else {}
        h = x
        for i, conv in enumerate(self.convs):
            h = nn.functional.dropout(h, self.dropout, self.training)
            h = conv(h, edge_index, **kw)
            if hook is not None:
                h = hook(i, h)
            if i < self.num_layers - 1:
                h = torch.relu(h)
        return h


@NODE_MODELS.register("GCN")
class NodeGCN(NodeClassifier):
    def make_conv(self, in_dim: int, out_dim: int, last: bool = False) -> nn.Module:
        return GCNConv(in_dim, out_dim)


@NODE_MODELS.register("GAT")
class NodeGAT(NodeClassifier):
    """GAT with 8 heads averaged in hidden layers (width ``hidden``) and one head at the output."""

    def make_conv(self, in_dim: int, out_dim: int, last: bool = False) -> nn.Module:
        return GATConv(in_dim, out_dim, heads=1 if last else 8, concat=False)


@NODE_MODELS.register("GraphSAGE")
class NodeSAGE(NodeClassifier):
    def make_conv(self, in_dim: int, out_dim: int, last: bool = False) -> nn.Module:
        return SAGEConv(in_dim, out_dim)


def build_node_model(
    name: str, in_dim: int, num_classes: int, hidden: int = 64, num_layers: int = 2, dropout: float = 0.5
) -> NodeClassifier:
    return NODE_MODELS.get(name, "model.name")(in_dim, num_classes, hidden, num_layers, dropout)
