"""Node-classification backbones (Forget-and-Explain setting): 2 layers, 64 hidden, dropout 0.5."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GCNConv, SAGEConv

from gnnsec.registry import Registry

NODE_MODELS: Registry[type[nn.Module]] = Registry("node model")


class NodeClassifier(nn.Module):
    version: ClassVar[int] = 1  # bump when the backbone's behaviour changes (cache keys)

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64, dropout: float = 0.5) -> None:
        super().__init__()
        self.dropout = dropout
        self.conv1 = self.make_conv(in_dim, hidden)
        self.conv2 = self.make_conv(hidden, num_classes, last=True)

    def make_conv(self, in_dim: int, out_dim: int, last: bool = False) -> nn.Module:
        raise NotImplementedError

    def forward(
        self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None, **_: object
    ) -> Tensor:
        kw = {"edge_weight": edge_weight} if edge_weight is not None else {}
        x = nn.functional.dropout(x, self.dropout, self.training)
        h = torch.relu(self.conv1(x, edge_index, **kw))
        h = nn.functional.dropout(h, self.dropout, self.training)
        return self.conv2(h, edge_index, **kw)


@NODE_MODELS.register("GCN")
class NodeGCN(NodeClassifier):
    def make_conv(self, in_dim: int, out_dim: int, last: bool = False) -> nn.Module:
        return GCNConv(in_dim, out_dim)


@NODE_MODELS.register("GAT")
class NodeGAT(NodeClassifier):
    def make_conv(self, in_dim: int, out_dim: int, last: bool = False) -> nn.Module:
        return GATConv(in_dim, out_dim, heads=1 if last else 8, concat=False)


@NODE_MODELS.register("GraphSAGE")
class NodeSAGE(NodeClassifier):
    def make_conv(self, in_dim: int, out_dim: int, last: bool = False) -> nn.Module:
        return SAGEConv(in_dim, out_dim)
