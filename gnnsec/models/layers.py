"""Message-passing layers with optional edge weights.

GCN takes edge weights natively. PyG's GIN, GraphSAGE and GAT layers do not, so these thin subclasses
multiply each message by its edge weight (GraphSAGE: a weighted mean; GAT: attention coefficients scaled and renormalised). A weight
of 0 removes an edge and 1 keeps it, so a binarised adjacency with a straight-through gradient (GCleaner
Eq. 6) is exactly a graph whose edges carry gradients.

PyG compiles ``propagate`` from the type hints of ``message``, so hints here use ``Optional`` and this module
does not use postponed annotations.
"""

from typing import Optional

import torch
from torch import Tensor
from torch_geometric.nn import GATConv, GINConv, SAGEConv
from torch_geometric.typing import OptPairTensor, OptTensor  # noqa: F401  (names used by PyG's propagate_type)
from torch_geometric.utils import scatter


class WeightedGINConv(GINConv):
    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor] = None) -> Tensor:  # type: ignore[override]
        # propagate_type: (x: OptPairTensor, edge_weight: OptTensor)
        out = self.propagate(edge_index, x=(x, x), edge_weight=edge_weight)
        return self.nn(out + (1 + self.eps) * x)

    def message(self, x_j: Tensor, edge_weight: Optional[Tensor] = None) -> Tensor:  # type: ignore[override]
        return x_j if edge_weight is None else x_j * edge_weight.view(-1, 1)


class WeightedSAGEConv(SAGEConv):
    """GraphSAGE with mean aggregation as a weighted mean: Σ_j w_ij x_j / Σ_j w_ij (0 without neighbours)."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:  # noqa: ANN003
        kwargs["aggr"] = "sum"
        super().__init__(in_channels, out_channels, **kwargs)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor] = None) -> Tensor:  # type: ignore[override]
        weight = edge_weight if edge_weight is not None else x.new_ones(edge_index.size(1))
        # propagate_type: (x: OptPairTensor, edge_weight: OptTensor)
        total = self.propagate(edge_index, x=(x, x), edge_weight=weight)
        norm = scatter(weight, edge_index[1], 0, dim_size=x.size(0), reduce="sum").view(-1, 1)
        mean = torch.where(norm > 0, total / norm.clamp(min=1e-12), torch.zeros_like(total))
        out = self.lin_l(mean)
        if self.root_weight:
            out = out + self.lin_r(x)
        return out

    def message(self, x_j: Tensor, edge_weight: Optional[Tensor] = None) -> Tensor:  # type: ignore[override]
        return x_j if edge_weight is None else x_j * edge_weight.view(-1, 1)


class WeightedGATConv(GATConv):
    """GAT whose attention coefficients are scaled by the edge weight and renormalised (self-loops: 1)."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs.setdefault("fill_value", 1.0)
        super().__init__(*args, **kwargs)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor] = None) -> Tensor:  # type: ignore[override]
        return super().forward(x, edge_index, edge_attr=edge_weight)

    def edge_update(self, alpha_j, alpha_i, edge_attr, index, ptr, dim_size):  # noqa: ANN001, ANN201
        alpha = super().edge_update(alpha_j, alpha_i, None, index, ptr, dim_size)
        if edge_attr is None:
            return alpha
        # attention renormalised over the weighted neighbourhood: weight 0 is exactly a removed edge
        alpha = alpha * edge_attr.view(-1, 1)
        norm = scatter(alpha, index, 0, dim_size=dim_size, reduce="sum")
        return alpha / norm[index].clamp(min=1e-12)
