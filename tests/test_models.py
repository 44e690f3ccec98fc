"""Backbones return logits, per-layer activations and graph embeddings in one pass; edge weights work."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from gnnsec.models import GRAPH_MODELS, NODE_MODELS, build_graph_model
from tests.conftest import path_graph

BACKBONES = ["GCN", "GAT", "GIN", "GraphSAGE"]


def _batch() -> Batch:
    return Batch.from_data_list([path_graph(n, y=n % 2, dim=5) for n in (3, 4, 6)])


def test_all_four_backbones_are_registered() -> None:
    assert set(BACKBONES) <= set(GRAPH_MODELS.names())
    assert {"GCN", "GAT", "GraphSAGE"} <= set(NODE_MODELS.names())


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("layers", [2, 4])
def test_forward_full_shapes(name: str, layers: int) -> None:
    b = _batch()
    model = build_graph_model(name, 5, 3, hidden=16, num_layers=layers).eval()
    out = model.forward_full(b.x, b.edge_index, b.batch)
    assert out.logits.shape == (3, 3)
    assert out.embedding.shape == (3, 16)
    assert len(out.node_activations) == layers
    assert all(a.shape == (b.num_nodes, 16) for a in out.node_activations)
    assert torch.allclose(model(b.x, b.edge_index, b.batch), out.logits)


@pytest.mark.parametrize("name", BACKBONES)
def test_edge_weights_pass_gradients_and_zero_weight_removes_edge(name: str) -> None:
    b = _batch()
    model = build_graph_model(name, 5, 2, hidden=8).eval()
    w = torch.ones(b.edge_index.size(1), requires_grad=True)
    model(b.x, b.edge_index, b.batch, edge_weight=w).sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
    # weight 0 on an edge == the graph without that edge (both directions of the first edge)
    drop = (b.edge_index[0] + b.edge_index[1] == 1) & (b.edge_index.min(0).values == 0)
    weights = (~drop).float()
    with torch.no_grad():
        weighted = model(b.x, b.edge_index, b.batch, edge_weight=weights)
        removed = model(b.x, b.edge_index[:, ~drop], b.batch)
    assert torch.allclose(weighted, removed, atol=1e-5)


@pytest.mark.parametrize("name", ["GCN", "GAT", "GraphSAGE"])
def test_node_models(name: str) -> None:
    g = path_graph(10, dim=4)
    model = NODE_MODELS.get(name)(4, 3)
    assert model(g.x, g.edge_index).shape == (10, 3)


def test_weighted_layers_compile_their_own_propagate_after_pyg_parents() -> None:
    """PyG compiles ``propagate`` per class; a parent compiled first must not shadow our edge weights."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from torch_geometric.nn import GATConv, GINConv, SAGEConv\n"
        "SAGEConv(3, 3); GINConv(torch.nn.Linear(3, 3)); GATConv(3, 3)\n"
        "from gnnsec.models.layers import WeightedGATConv, WeightedGINConv, WeightedSAGEConv\n"
        "ei = torch.tensor([[0, 1], [1, 2]])\n"
        "for conv in (WeightedSAGEConv(3, 3), WeightedGINConv(torch.nn.Linear(3, 3)), WeightedGATConv(3, 3)):\n"
        "    conv(torch.randn(4, 3), ei, torch.ones(2))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
