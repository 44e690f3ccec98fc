"""GraphEditor (Cong & Mahdavi, 2023): exact node removal from a linear GNN in closed form, then
fine-tuning when the served model is a nonlinear backbone.

Linear GNN (the paper's learning problem): propagated features Z = Â^K X (Â the GCN-normalised adjacency
with self-loops, K = the backbone's depth, SGC-style) and a ridge head on one-hot labels Y of the training
nodes,

    W = (Z_Tᵀ Z_T + λ I)⁻¹ Z_Tᵀ Y_T .

Deleting nodes F changes the training rows of F (removed) and of every node within K hops of F (their
propagation changed). With A = Z_Tᵀ Z_T + λ I and its inverse kept from training time (``prepare``), the
update is a rank-r Woodbury correction over the r changed rows U (old rows with sign -1, new rows +1):

    A'⁻¹ = A⁻¹ - A⁻¹ U (S⁻¹ + Uᵀ A⁻¹ U)⁻¹ Uᵀ A⁻¹ ,  B' = B - Z_oldᵀ Y_old + Z_newᵀ Y_new ,  W' = A'⁻¹ B' ,

which equals re-solving the ridge problem on the graph without F (exact unlearning; tested to numerical
tolerance). Applied to a GCN/GAT backbone (our documented choice; the paper's exactness holds for the
linear model only): the backbone, starting from its trained weights, is fine-tuned on the graph without F
for ``finetune_epochs`` full-batch steps on the retained training labels, plus ``beta`` times the
cross-entropy towards the exactly-unlearned linear model's predictions on the other served nodes (the
closed-form model is the unlearned teacher). The served graph is the original without F.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from gnnsec.train_nodes import fit_nodes
from gnnsec.unlearning.base import Unlearner, UnlearnRequest, k_hop_mask, remove_nodes
from gnnsec.unlearning.registry import UNLEARNERS


def propagate(graph: Data, k: int) -> Tensor:
    """Â^k X in float64 (Â = D^-1/2 (A + I) D^-1/2)."""
    ei, w = gcn_norm(graph.edge_index, None, graph.num_nodes, add_self_loops=True)
    adj = torch.sparse_coo_tensor(ei.flip(0), w.double(), (graph.num_nodes, graph.num_nodes)).coalesce()
    z = graph.x.double()
    for _ in range(k):
        z = torch.sparse.mm(adj, z)
    return z


class LinearGNN:
    """Ridge regression on propagated features with its inverse Gram matrix, for exact removal."""

    def __init__(self, z_train: Tensor, y_train: Tensor, num_classes: int, lam: float) -> None:
        d = z_train.size(1)
        y = nn.functional.one_hot(y_train, num_classes).double()
        self.lam = lam
        self.a_inv = torch.linalg.inv(z_train.T @ z_train + lam * torch.eye(d, dtype=torch.float64))
        self.b = z_train.T @ y
        self.w = self.a_inv @ self.b
        self.num_classes = num_classes

    def remove_and_add(self, z_old: Tensor, y_old: Tensor, z_new: Tensor, y_new: Tensor) -> Tensor:
        """Closed-form update for removed rows (z_old) and re-propagated rows (z_new); returns W'."""
        u = torch.cat([z_old, z_new]).T  # d x r
        signs = torch.cat([-torch.ones(len(z_old)), torch.ones(len(z_new))]).double()
        if u.size(1) == 0:
            return self.w
        a_inv_u = self.a_inv @ u
        core = torch.diag(1.0 / signs) + u.T @ a_inv_u
        self.a_inv = self.a_inv - a_inv_u @ torch.linalg.solve(core, a_inv_u.T)
        oh = lambda y: nn.functional.one_hot(y, self.num_classes).double()  # noqa: E731
        self.b = self.b - z_old.T @ oh(y_old) + z_new.T @ oh(y_new)
        self.w = self.a_inv @ self.b
        return self.w

    def predict(self, z: Tensor) -> Tensor:
        return z @ self.w


def exact_removal(
    graph: Data, forget: Tensor, k: int, lam: float, num_classes: int, linear: LinearGNN | None = None
) -> tuple[LinearGNN, Data, Tensor]:
    """Fit (or reuse) the linear GNN on ``graph`` and remove ``forget`` in closed form.

    Returns the updated model, the graph without ``forget`` and its propagated features.
    """
    z = propagate(graph, k)
    train = graph.train_mask
    if linear is None:
        linear = LinearGNN(z[train], graph.y[train], num_classes, lam)
    served = remove_nodes(graph, forget)
    z_new_all = propagate(served, k)
    is_f = torch.zeros(graph.num_nodes, dtype=torch.bool)
    is_f[forget] = True
    # rows whose propagation changed: within k+1 hops (the degrees of F's neighbours enter Â), incl. F
    changed = k_hop_mask(graph, forget, k + 1) & train
    old_ids = changed.nonzero().view(-1)
    new_ids = (changed & ~is_f).nonzero().view(-1)
    pos = torch.full((graph.num_nodes,), -1, dtype=torch.long)
    pos[served.node_ids] = torch.arange(served.num_nodes)
    linear.remove_and_add(z[old_ids], graph.y[old_ids], z_new_all[pos[new_ids]], graph.y[new_ids])
    return linear, served, z_new_all


@UNLEARNERS.register("grapheditor")
class GraphEditor(Unlearner):
    name = "grapheditor"

    @dataclass
    class Params:
        lam: float = 1e-3  # ridge λ (Z is row-normalised features, so entries are small)
        finetune_epochs: int = 20
        beta: float = 0.5

    def prepare(self, req: UnlearnRequest) -> None:
        g = req.graph
        self._z = propagate(g, req.model.num_layers)
        self._linear = LinearGNN(self._z[g.train_mask], g.y[g.train_mask], req.num_classes, self.p.lam)

    def _unlearn(self, req: UnlearnRequest) -> tuple[nn.Module, Data, dict[str, float]]:
        k = req.model.num_layers
        linear, served, z_served = exact_removal(
            req.graph, req.forget, k, self.p.lam, req.num_classes, linear=self._linear
        )
        teacher = linear.predict(z_served).argmax(-1)
        others = ~served.train_mask
        model = copy.deepcopy(req.model)

        def kd(logits: Tensor) -> Tensor:
            return self.p.beta * nn.functional.cross_entropy(logits[others], teacher[others])

        history = []
        if self.p.finetune_epochs > 0:
            history = fit_nodes(model, served, req.train, epochs=self.p.finetune_epochs, extra_loss=kd)
        agree = float((teacher[served.test_mask] == served.y[served.test_mask]).double().mean())
        return (
            model,
            served,
            {
                "linear_test_acc": agree,
                "final_loss": history[-1]["loss"] if history else float("nan"),
            },
        )
