"""Node features of graph-classification datasets.

``degree``: one-hot node degree with a fixed cap shared by attacker and defender (the GCleaner authors'
choice, after GIN's OneHotDegree); degrees above the cap are clipped to it. It is recomputed after every
trigger injection, since a trigger changes degrees. ``native``: the dataset's own node labels (one-hot),
or its node attributes where it has no labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.utils import degree


@dataclass(frozen=True)
class Featurizer:
    mode: str  # "degree" | "native"
    degree_cap: int
    native_dim: int = 0

    @property
    def num_features(self) -> int:
        return self.degree_cap + 1 if self.mode == "degree" else self.native_dim

    def degree_features(
        self, edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None
    ) -> Tensor:
        """One-hot of (clipped) degree. With ``edge_weight`` the degree is the weighted in-degree
        (:func:`degree_onehot`: exact for 0/1 weights, differentiable in them)."""
        if edge_weight is None:
            deg = degree(edge_index[1], num_nodes, dtype=torch.float).clamp(max=self.degree_cap)
            return torch.nn.functional.one_hot(deg.long(), self.degree_cap + 1).float()
        return degree_onehot(edge_index, edge_weight, num_nodes, self.degree_cap)

    def features(self, edge_index: Tensor, num_nodes: int, x_native: Tensor | None) -> Tensor:
        if self.mode == "degree":
            return self.degree_features(edge_index, num_nodes)
        if x_native is None:
            raise ValueError("native features requested but the graph has none")
        return x_native.float()

    def refresh(self, data):  # noqa: ANN001, ANN201 - Data or Batch in, same out
        """Recompute ``data.x`` after its edges changed (no-op for native features)."""
        if self.mode == "degree":
            data.x = self.degree_features(data.edge_index, data.num_nodes)
        return data


def degree_onehot(edge_index: Tensor, edge_weight: Tensor, num_nodes: int, cap: int) -> Tensor:
    """One-hot of the clipped weighted in-degree, differentiable in the edge weights.

    With d the weighted in-degree clipped to [0, cap], the row is the linear interpolation between the
    one-hots of ⌊d⌋ and ⌊d⌋+1 with weights (1 − frac(d), frac(d)). 0/1 weights make d an integer, so the
    forward value is exactly the one-hot degree of the graph without the zero-weight edges; the gradient
    moves mass to the next degree bin as the degree grows. The one home of the differentiable degree
    features used by GTA's generator training and GCleaner's trigger recovery.
    """
    deg = torch.zeros(num_nodes, dtype=edge_weight.dtype, device=edge_weight.device)
    deg = deg.index_add(0, edge_index[1], edge_weight).clamp(0, cap)
    low = deg.detach().floor().clamp(max=cap)
    frac = deg - low
    low_i = low.long()
    high_i = (low_i + 1).clamp(max=cap)
    out = deg.new_zeros(num_nodes, cap + 1)
    rows = torch.arange(num_nodes, device=deg.device)
    out = out.index_put((rows, low_i), 1 - frac, accumulate=True)
    return out.index_put((rows, high_i), frac, accumulate=True)
