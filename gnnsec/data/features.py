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
        """One-hot of (clipped) degree. With ``edge_weight`` the degree is the weighted in-degree."""
        deg = (
            degree(edge_index[1], num_nodes, dtype=torch.float)
            if edge_weight is None
            else (torch.zeros(num_nodes, device=edge_index.device).index_add(0, edge_index[1], edge_weight))
        )
        idx = deg.round().clamp(max=self.degree_cap).long()
        return torch.nn.functional.one_hot(idx, self.degree_cap + 1).float()

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
