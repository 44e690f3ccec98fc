"""Snapshots of a node classifier for the verifier (Forget and Explain, section 3.2), and their comparison.

A snapshot of (model, served graph) holds, per original node id: the vanilla-saliency attribution
(Simonyan et al., Eq. 1: s_v = Σ_j |∂ℓ/∂X_vj| with ℓ the mean cross-entropy over all labelled nodes of
the served graph; φ_j = Σ_v |∂ℓ/∂X_vj|), the per-node loss (membership inference), the local proxy graph
(union of k-hop ego networks around the forget nodes present, networkx, original ids) and the symbolic
rules of a depth-limited scikit-learn decision tree fitted to the model's predictions from node features
(GraphChef-style surrogate; rules are root-to-leaf paths "feature<=threshold" / ">" with thresholds
rounded to 3 decimals, plus the leaf's class). The verifier knows nothing of which unlearner produced the
model.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np
import torch
from sklearn.tree import DecisionTreeClassifier
from torch import Tensor, nn
from torch_geometric.data import Data

from gnnsec.verify import metrics as M


@dataclass
class Snapshot:
    node_attr: np.ndarray  # [N_orig], 0 for nodes absent from the served graph
    feature_attr: np.ndarray  # [d]
    losses: np.ndarray  # [N_orig], nan for absent nodes
    present: np.ndarray  # [N_orig] bool
    proxy_edges: set[tuple[int, int]]
    rules: set[str]


def saliency(model: nn.Module, graph: Data) -> tuple[Tensor, Tensor, Tensor]:
    """(node attribution, feature attribution, per-node loss) of ``model`` on ``graph``."""
    model.eval()
    x = graph.x.clone().requires_grad_(True)
    out = model(x, graph.edge_index, node_ids=getattr(graph, "node_ids", None))
    per_node = nn.functional.cross_entropy(out, graph.y, reduction="none")
    (grad,) = torch.autograd.grad(per_node.mean(), x)
    grad = grad.abs()
    return grad.sum(1).detach(), grad.sum(0).detach(), per_node.detach()


def proxy_graph(graph: Data, forget: Tensor, k: int) -> set[tuple[int, int]]:
    """Edges (u < v, original ids) of the union of k-hop ego networks around the forget nodes in ``graph``."""
    ids = graph.node_ids
    pos = {int(o): i for i, o in enumerate(ids.tolist())}
    centres = [pos[int(f)] for f in forget.tolist() if int(f) in pos]
    g = nx.Graph()
    g.add_nodes_from(range(graph.num_nodes))
    g.add_edges_from(graph.edge_index.t().tolist())
    edges: set[tuple[int, int]] = set()
    for c in centres:
        for u, v in nx.ego_graph(g, c, radius=k).edges():
            a, b = int(ids[u]), int(ids[v])
            if a != b:
                edges.add((min(a, b), max(a, b)))
    return edges


def tree_rules(x: np.ndarray, pred: np.ndarray, depth: int, seed: int) -> set[str]:
    tree = DecisionTreeClassifier(max_depth=depth, random_state=seed).fit(x, pred)
    t = tree.tree_
    rules: set[str] = set()

    def walk(node: int, path: tuple[str, ...]) -> None:
        if t.children_left[node] == -1:
            cls = int(tree.classes_[int(np.argmax(t.value[node]))])
            rules.add(" & ".join(path) + f" -> {cls}")
            return
        f, thr = int(t.feature[node]), round(float(t.threshold[node]), 3)
        walk(int(t.children_left[node]), (*path, f"x{f}<={thr}"))
        walk(int(t.children_right[node]), (*path, f"x{f}>{thr}"))

    walk(0, ())
    return rules


def take_snapshot(
    model: nn.Module,
    graph: Data,
    forget: Tensor,
    num_nodes: int,
    k: int = 2,
    depth: int = 3,
    seed: int = 0,
    structure: bool = True,
) -> Snapshot:
    """``structure=False`` skips the proxy graph and the surrogate rules (attributions and losses only)."""
    node_s, feat_s, losses = saliency(model, graph)
    ids = graph.node_ids.numpy()
    node_attr = np.zeros(num_nodes)
    node_attr[ids] = node_s.numpy()
    loss_all = np.full(num_nodes, np.nan)
    loss_all[ids] = losses.numpy()
    present = np.zeros(num_nodes, dtype=bool)
    present[ids] = True
    if not structure:
        return Snapshot(node_attr, feat_s.numpy(), loss_all, present, set(), set())
    with torch.no_grad():
        pred = model(graph.x, graph.edge_index, node_ids=graph.node_ids).argmax(-1).numpy()
    rules = tree_rules(graph.x.numpy(), pred, depth, seed)
    return Snapshot(node_attr, feat_s.numpy(), loss_all, present, proxy_graph(graph, forget, k), rules)


def compare(
    pre: Snapshot,
    post: Snapshot,
    forget: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    seed: int = 0,
    probe_pre: Snapshot | None = None,
    probe_post: Snapshot | None = None,
) -> dict[str, float]:
    """The verifier's row. ``forget``, ``train``, ``test``: boolean masks over the original nodes.

    ``probe_*``: snapshots of the pre/post models on the *original* graph (an auditor re-presenting the
    forgotten nodes): ``ra_probe_*`` is RA there, ``mi_forget_*`` the loss-threshold AUC of the forget nodes
    against as many test nodes drawn at random (seeded) as matched non-members.
    """
    out = {
        "ra_pre": M.residual_attribution(pre.node_attr, forget),
        "ra_post": M.residual_attribution(post.node_attr, forget),
        "hs": M.heatmap_shift(pre.node_attr, post.node_attr),
        "esd": M.explainability_score_deviation(pre.feature_attr, post.feature_attr),
        "ged": float(M.graph_edit_distance(pre.proxy_edges, post.proxy_edges)),
        "proxy_edges_pre": float(len(pre.proxy_edges)),
        "grs": float(M.graph_rule_shift(pre.rules, post.rules)),
        "mi_auc_pre": M.membership_auc(pre.losses, train & pre.present, test & ~forget),
        "mi_auc_post": M.membership_auc(post.losses, train & post.present & ~forget, test & ~forget),
    }
    out["ra_drop"] = out["ra_pre"] - out["ra_post"]
    if probe_pre is not None and probe_post is not None:
        rng = np.random.default_rng(seed)
        pool = np.flatnonzero(test & ~forget)
        matched = np.zeros_like(forget)
        matched[rng.choice(pool, size=min(int(forget.sum()), len(pool)), replace=False)] = True
        out["ra_probe_pre"] = M.residual_attribution(probe_pre.node_attr, forget)
        out["ra_probe_post"] = M.residual_attribution(probe_post.node_attr, forget)
        out["mi_forget_pre"] = M.membership_auc(probe_pre.losses, forget, matched)
        out["mi_forget_post"] = M.membership_auc(probe_post.losses, forget, matched)
    return out
