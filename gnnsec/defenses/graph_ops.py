"""Vectorised structural edits shared by the baselines: edge pruning, random subgraphs, M-fold replicas.

All functions work on the flat ``(x, edge_index, batch)`` of a mini-batch (no per-node Python loops) and
re-featurize afterwards: in degree mode the one-hot degree is recomputed from the edited edges, as after a
trigger injection; native features are kept (and sub-selected with their nodes).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data
from torch_geometric.utils import scatter, subgraph

from gnnsec.data.features import Featurizer


def refeaturize(x: Tensor, edge_index: Tensor, featurizer: Featurizer) -> Tensor:
    """Node features after the edges changed: recomputed degrees (degree mode) or ``x`` unchanged."""
    if featurizer.mode == "degree":
        return featurizer.degree_features(edge_index, x.size(0)).to(x.device)
    return x


def edge_cosine(h: Tensor, edge_index: Tensor) -> Tensor:
    """Cosine similarity of the two endpoints' vectors, one value per edge."""
    if edge_index.numel() == 0:
        return torch.empty(0, device=h.device)
    return torch.nn.functional.cosine_similarity(h[edge_index[0]], h[edge_index[1]], dim=-1, eps=1e-8)


def split_edges(batch: Batch, keep: Tensor, featurizer: Featurizer) -> list[Data]:
    """The graphs of ``batch`` with only the edges where ``keep`` holds, re-featurized, as a list."""
    ei = batch.edge_index[:, keep]
    owner = batch.batch[ei[0]] if ei.numel() else ei.new_empty(0)
    counts = torch.bincount(owner, minlength=batch.num_graphs).tolist()
    local = (ei - batch.ptr[owner]).split(counts, dim=1) if ei.numel() else [ei] * batch.num_graphs
    out = []
    for i, g in enumerate(batch.to_data_list()):
        g = g.clone()
        g.edge_index = local[i] if ei.numel() else torch.empty(2, 0, dtype=torch.long)
        g.x = refeaturize(g.x, g.edge_index, featurizer)
        out.append(g)
    return out


def replicate(x: Tensor, edge_index: Tensor, batch: Tensor, num_graphs: int, m: int) -> tuple[Tensor, ...]:
    """``m`` disjoint copies of a mini-batch: copy r's graph b gets graph id ``r·num_graphs + b``."""
    n = x.size(0)
    reps = torch.arange(m, device=x.device)
    x_m = x.repeat(m, 1)
    ei_m = (edge_index.unsqueeze(0) + (reps * n).view(m, 1, 1)).permute(1, 0, 2).reshape(2, -1)
    b_m = (batch.unsqueeze(0) + (reps * num_graphs).view(m, 1)).reshape(-1)
    return x_m, ei_m, b_m


def subsample(
    x: Tensor,
    edge_index: Tensor,
    batch: Tensor,
    num_graphs: int,
    beta: float,
    mode: str,
    featurizer: Featurizer,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """A random subgraph of every graph (randomized subsampling, Zhang et al. 2021 section 6).

    ``mode="node"``: keep each node with probability ``beta`` (at least one node per graph, so no graph
    vanishes from the readout) and the edges among kept nodes. ``mode="edge"``: keep each undirected edge
    with probability ``beta`` (both directions together), all nodes stay.
    """
    n = x.size(0)
    if mode == "node":
        r = torch.rand(n, generator=generator).to(x.device)
        keep = r < beta
        lowest = scatter(r, batch, dim=0, dim_size=num_graphs, reduce="min")
        keep |= r == lowest[batch]
        ei, _ = subgraph(keep, edge_index, relabel_nodes=True, num_nodes=n)
        x_k = x[keep]
        return refeaturize(x_k, ei, featurizer), ei, batch[keep]
    if edge_index.numel() == 0:
        return x, edge_index, batch
    lo, hi = edge_index.min(0).values, edge_index.max(0).values
    key = lo * n + hi
    uniq, inverse = torch.unique(key, return_inverse=True)
    r = torch.rand(uniq.numel(), generator=generator).to(x.device)
    ei = edge_index[:, (r < beta)[inverse]]
    return refeaturize(x, ei, featurizer), ei, batch
