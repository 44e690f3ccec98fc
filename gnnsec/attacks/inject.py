"""Vectorised trigger injection on a batched graph (the "Montage" of GCleaner Eq. 5).

For every graph b the nodes at ``positions[b]`` become the trigger: the edges among them are removed and
replaced by the trigger's edges ``adj[b]``; with ``features`` their features are overwritten too. Works on
``edge_index`` with tensor ops only; graphs and nodes outside the trigger are untouched.

:func:`soft_inject` is the differentiable counterpart used wherever a trigger generator is trained (GTA's
bi-level optimisation, GCleaner's trigger recovery): every candidate pair among the trigger nodes becomes an
edge whose weight is the binarised adjacency (:func:`binarize`, a straight-through estimator), so the model
sees exactly the hard triggered graph while gradients reach the generator.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from gnnsec.data.features import Featurizer, degree_onehot


class StraightThroughThreshold(torch.autograd.Function):
    """1[x > t] in the forward pass, identity gradient in the backward pass (GTA's ``GradWhere``; the
    straight-through estimator of binary neural networks)."""

    @staticmethod
    def forward(ctx, x: Tensor, threshold: float) -> Tensor:  # noqa: ANN001
        return (x > threshold).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: ANN001
        return grad, None


def binarize(soft: Tensor, threshold: float = 0.5) -> Tensor:
    """Forward: exactly 0/1 (soft > threshold). Backward: identity onto ``soft`` (straight-through)."""
    return StraightThroughThreshold.apply(soft, threshold)


def trigger_nodes(batch: Batch, positions: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Global ids [B, k] of each graph's trigger positions and a node flag of trigger membership."""
    device = batch.edge_index.device
    gpos = batch.ptr[:-1].view(-1, 1).to(device) + positions.to(device)
    in_trigger = torch.zeros(batch.num_nodes, dtype=torch.bool, device=device)
    in_trigger[gpos[mask.to(device)]] = True
    return gpos, in_trigger


def soft_inject(
    batch: Batch,
    positions: Tensor,
    mask: Tensor,
    adj: Tensor,
    features: Tensor | None,
    featurizer: Featurizer,
) -> tuple[Tensor, Tensor, Tensor]:
    """The triggered batch as (x, edge_index, edge_weight), differentiable in ``adj`` and ``features``.

    ``adj`` [B, k, k] is the binarised trigger adjacency (0/1 forward). Edges not internal to the trigger
    keep weight 1; every ordered pair of valid trigger nodes gets weight ``adj[b, i, j]``. Degree features
    follow the weighted degree (:func:`~gnnsec.data.features.degree_onehot`); native features of the
    trigger nodes are replaced by ``features`` when given.
    """
    device = batch.x.device
    positions, mask = positions.to(device), mask.to(device)
    k = positions.size(1)
    gpos, in_trigger = trigger_nodes(batch, positions, mask)
    src, dst = batch.edge_index
    keep = ~(in_trigger[src] & in_trigger[dst])
    off_diag = ~torch.eye(k, dtype=torch.bool, device=device)
    pair_ok = mask.unsqueeze(2) & mask.unsqueeze(1) & off_diag
    b, i, j = torch.nonzero(pair_ok, as_tuple=True)
    edge_index = torch.cat([batch.edge_index[:, keep], torch.stack([gpos[b, i], gpos[b, j]])], 1)
    weight = torch.cat([adj.new_ones(int(keep.sum())), adj[b, i, j]])
    if featurizer.mode == "degree":
        x = degree_onehot(edge_index, weight, batch.num_nodes, featurizer.degree_cap)
    elif features is not None:
        x = batch.x.index_put((gpos[mask],), features[mask].to(batch.x.dtype))
    else:
        x = batch.x
    return x, edge_index, weight


def induced_adjacency(batch: Batch, positions: Tensor, mask: Tensor) -> Tensor:
    """The adjacency [B, k, k] (bool) that each graph already has among its positions (valid pairs only)."""
    device = batch.edge_index.device
    gpos, _ = trigger_nodes(batch, positions, mask)
    n = batch.num_nodes
    keys = batch.edge_index[0] * n + batch.edge_index[1]
    pair_keys = gpos.unsqueeze(2) * n + gpos.unsqueeze(1)  # [B, k, k]
    present = torch.isin(pair_keys, keys)
    valid = mask.to(device).unsqueeze(2) & mask.to(device).unsqueeze(1)
    return present & valid


def induces(batch: Batch, positions: Tensor, mask: Tensor, adj: Tensor) -> Tensor:
    """Per graph [B] (bool, CPU): do the nodes at ``positions`` already have exactly the edges of the fixed
    trigger ``adj`` [k, k] among them (so that injecting there would leave the graph unchanged)?"""
    have = induced_adjacency(batch, positions, mask).cpu()
    mask = mask.cpu()
    valid = mask.unsqueeze(2) & mask.unsqueeze(1)
    want = (adj.cpu() > 0.5).unsqueeze(0) & valid
    return (have == want).flatten(1).all(1)


def can_carry(graphs: Sequence[Data], adj: Tensor) -> np.ndarray:
    """Per graph (bool): can the fixed trigger ``adj`` [k, k] be injected so that the graph changes?

    Injection at k nodes replaces their induced edges by the trigger's. A graph that is not complete has a
    non-adjacent pair that can be mapped onto a trigger edge, so it can carry any trigger with an edge; a
    complete graph can carry it only if the trigger (on its first min(n, k) slots) is not complete; a graph
    of fewer than 2 nodes carries nothing.
    """
    k = adj.size(0)
    a = adj.cpu() > 0.5
    out = np.zeros(len(graphs), dtype=bool)
    for i, g in enumerate(graphs):
        n = int(g.num_nodes)
        if n < 2:
            continue
        src, dst = g.edge_index
        pairs = int(torch.unique(src[src != dst] * n + dst[src != dst]).numel())
        complete = pairs == n * (n - 1)
        m = min(n, k)
        trigger_complete = bool(a[:m, :m].sum() == m * (m - 1))
        out[i] = not (complete and trigger_complete)
    return out


def best_changing_positions(
    batch: Batch, ranked: Tensor, ranked_mask: Tensor, k: int, adj: Tensor, spare: int
) -> tuple[Tensor, Tensor]:
    """The k best-ranked nodes of each graph, unless injecting the fixed trigger ``adj`` there changes
    nothing: then the first k-subset of the ``k + spare`` best-ranked nodes (subsets in order of rank sum)
    where it does. ``ranked`` [B, c] holds local node indices best first (``ranked_mask`` their validity).
    Graphs where no such subset exists keep their top k."""
    c = min(ranked.size(1), k + spare)
    pos, mask = ranked[:, :k].clone(), ranked_mask[:, :k].clone()
    todo = induces(batch, pos, mask, adj) & mask.all(1)
    if spare <= 0 or c <= k or not bool(todo.any()):
        return pos, mask
    combos = sorted(itertools.combinations(range(c), k), key=lambda t: (sum(t), t))[1:]
    for combo in combos:
        idx = torch.tensor(combo)
        p, m = ranked[:, idx], ranked_mask[:, idx]
        ok = todo & m.all(1) & ~induces(batch, p, m, adj)
        pos[ok], mask[ok] = p[ok], m[ok]
        todo &= ~ok
        if not bool(todo.any()):
            break
    return pos, mask


def trigger_edges(batch: Batch, positions: Tensor, mask: Tensor, adj: Tensor) -> tuple[Tensor, Tensor]:
    """Global edge_index of the trigger edges (both directions) and a node flag of trigger membership."""
    device = batch.edge_index.device
    positions, mask = positions.to(device), mask.to(device)
    B, k = positions.shape
    gpos, in_trigger = trigger_nodes(batch, positions, mask)
    adj = adj.to(device)
    if adj.dim() == 2:
        adj = adj.unsqueeze(0).expand(B, k, k)
    adj = adj > 0.5
    adj = adj & ~torch.eye(k, dtype=torch.bool, device=device)
    adj = adj | adj.transpose(1, 2)  # undirected
    pair_ok = mask.unsqueeze(2) & mask.unsqueeze(1)
    b, i, j = torch.nonzero(adj & pair_ok, as_tuple=True)
    new_edges = torch.stack([gpos[b, i], gpos[b, j]])
    return new_edges, in_trigger


def replace_subgraph(
    batch: Batch,
    positions: Tensor,
    mask: Tensor,
    adj: Tensor,
    features: Tensor | None,
    featurizer: Featurizer,
) -> Batch:
    """A new batch with each graph's trigger nodes rewired to ``adj`` (and re-featurized)."""
    out = batch.clone()
    new_edges, in_trigger = trigger_edges(batch, positions, mask, adj)
    src, dst = batch.edge_index
    keep = ~(in_trigger[src] & in_trigger[dst])
    out.edge_index = torch.cat([batch.edge_index[:, keep], new_edges], dim=1)
    out.edge_index = _sort_edges(out.edge_index, batch.num_nodes)
    _fix_edge_slices(out)
    if features is not None and featurizer.mode == "native":
        gpos = batch.ptr[:-1].view(-1, 1).to(positions.device) + positions
        x = out.x.clone()
        x[gpos[mask]] = features[mask].to(x.dtype)
        out.x = x
        if "x_native" in out:
            xn = out.x_native.clone()
            xn[gpos[mask]] = features[mask].to(xn.dtype)
            out.x_native = xn
    featurizer.refresh(out)
    return out


def _sort_edges(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Sort edges by (source, target) so that edge order is canonical and to_data_list slices correctly."""
    key = edge_index[0] * num_nodes + edge_index[1]
    return edge_index[:, key.argsort()]


def _fix_edge_slices(out: Batch) -> None:
    """Keep ``Batch.to_data_list()`` right after the number of edges per graph changed."""
    counts = torch.bincount(out.batch[out.edge_index[0]], minlength=out.num_graphs).cpu()
    slices = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    out._slice_dict["edge_index"] = slices
