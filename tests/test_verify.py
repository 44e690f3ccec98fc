"""The verifier's metrics on hand-made inputs, each equal to the value computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch_geometric.data import Data

from gnnsec.unlearning import remove_nodes
from gnnsec.verify import metrics as M
from gnnsec.verify.snapshot import compare, proxy_graph, saliency, take_snapshot, tree_rules


def path_graph(n: int) -> Data:
    src = torch.arange(n - 1)
    ei = torch.stack([torch.cat([src, src + 1]), torch.cat([src + 1, src])])
    g = Data(x=torch.zeros(n, 2), edge_index=ei, y=torch.zeros(n, dtype=torch.long), num_nodes=n)
    g.node_ids = torch.arange(n)
    for key in ("train_mask", "val_mask", "test_mask"):
        g[key] = torch.zeros(n, dtype=torch.bool)
    return g


def test_residual_attribution_by_hand() -> None:
    s = np.array([1.0, 2.0, 3.0, 4.0])
    forget = np.array([False, True, False, True])
    assert M.residual_attribution(s, forget) == pytest.approx(6 / 10)
    s_post = np.array([1.0, 0.0, 3.0, 0.0])  # forgotten nodes left the graph
    assert M.residual_attribution(s_post, forget) == 0.0


def test_heatmap_shift_and_esd_by_hand() -> None:
    pre, post = np.array([2.0, 1.0, 0.0, 1.0]), np.array([1.0, 1.0, 0.5, 0.0])
    # max-normalised: [1, .5, 0, .5] vs [1, 1, .5, 0] -> |diff| = [0, .5, .5, .5] -> mean .375
    assert M.heatmap_shift(pre, post) == pytest.approx(0.375)
    assert M.explainability_score_deviation(pre, post) == pytest.approx(0.375)
    assert M.heatmap_shift(pre, 3 * pre) == pytest.approx(0.0)  # scale-free


def test_graph_edit_distance_of_proxy_graphs_by_hand() -> None:
    g = path_graph(6)  # 0-1-2-3-4-5
    forget = torch.tensor([0])
    pre = proxy_graph(g, forget, k=2)
    assert pre == {(0, 1), (1, 2)}
    served = remove_nodes(g, forget)
    assert proxy_graph(served, forget, k=2) == set()
    assert M.graph_edit_distance(pre, set()) == 2
    # a method that keeps node 0 but drops the edge (1, 2): post proxy {(0, 1)} -> GED 1
    kept = path_graph(6)
    kept.edge_index = kept.edge_index[:, ~(((kept.edge_index == 1) | (kept.edge_index == 2)).all(0))]
    assert M.graph_edit_distance(pre, proxy_graph(kept, forget, k=2)) == 1


def test_graph_rule_shift_by_hand() -> None:
    x = np.array([[0.0], [0.0], [1.0], [1.0]])
    rules = tree_rules(x, np.array([0, 0, 1, 1]), depth=3, seed=0)
    assert rules == {"x0<=0.5 -> 0", "x0>0.5 -> 1"}
    flipped = tree_rules(x, np.array([1, 1, 0, 0]), depth=3, seed=0)
    assert M.graph_rule_shift(rules, flipped) == 2
    assert M.graph_rule_shift(rules, rules) == 0


def test_membership_auc_by_hand() -> None:
    losses = np.array([0.1, 0.2, 0.9, 0.3, np.nan])
    members = np.array([True, True, False, False, False])
    non = np.array([False, False, True, True, True])
    # member scores -0.1, -0.2 beat non-member -0.9 and -0.3: every pair ordered -> AUC 1
    assert M.membership_auc(losses, members, non) == pytest.approx(1.0)
    losses2 = np.array([0.1, 0.5, 0.9, 0.3])
    # pairs (m, n): (.1,.9) win, (.1,.3) win, (.5,.9) win, (.5,.3) lose -> 3/4
    assert M.membership_auc(losses2, members[:4], non[:4]) == pytest.approx(0.75)


class Linear(nn.Module):
    """logits = x W, no message passing: saliency computable by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.eye(2))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, **_: object) -> torch.Tensor:
        return x @ self.w


def test_vanilla_saliency_by_hand() -> None:
    g = path_graph(2)
    g.x = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    node_s, feat_s, losses = saliency(Linear(), g)
    # dL/dx_v = (softmax(x_v) - e_y) / N: node 0 -> [-.5, .5]/2, node 1 -> [-.25, .25]/2
    assert node_s.tolist() == pytest.approx([0.5, 0.25])
    assert feat_s.tolist() == pytest.approx([0.375, 0.375])
    assert losses.tolist() == pytest.approx([math.log(2.0), -math.log(0.75)])


def test_compare_row_on_removed_node() -> None:
    g = path_graph(4)
    g.x = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [0.0, 0.0], [0.0, 0.0]])
    forget = torch.tensor([0])
    pre = take_snapshot(Linear(), g, forget, 4, k=1, depth=2)
    post = take_snapshot(Linear(), remove_nodes(g, forget), forget, 4, k=1, depth=2)
    mask = np.array([True, False, False, False])
    row = compare(pre, post, mask, ~mask, ~mask)
    # pre saliency [.5, .25, .5, .5]/… over N=4: RA = .125 / (.4375) ; post RA 0
    assert row["ra_pre"] == pytest.approx(0.5 / 1.75)
    assert row["ra_post"] == 0.0
    assert row["ged"] == 1.0  # proxy {(0, 1)} vanished
