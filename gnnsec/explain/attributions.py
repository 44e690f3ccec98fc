"""Input-attribution heatmaps for GCleaner's L_explain comparison (Table 6): Integrated Gradients, Guided
Backprop and GNNExplainer, each reduced to one ``[num_nodes]`` map.

All three explain the model in eval mode (no dropout noise, no BatchNorm running-statistics updates from the
explainer's own forward passes) and restore the previous mode afterwards. With ``create_graph=True`` the
maps are differentiable w.r.t. the model's parameters (see each method for what that gradient is).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch_geometric.utils import scatter

from gnnsec.explain.heatmaps import HEATMAPS, class_scores
from gnnsec.explain.utils import eval_mode, frozen_params


def _input(x: Tensor) -> Tensor:
    """``x`` as a tensor gradients can be taken with respect to (a fresh leaf when ``x`` has no graph)."""
    return x if x.requires_grad else x.detach().requires_grad_(True)


# ---- Integrated Gradients ------------------------------------------------------------------------------------


@HEATMAPS.register("integrated_gradients")
def integrated_gradients(
    model: nn.Module,
    x: Tensor,
    edge_index: Tensor,
    batch: Tensor,
    classes: Tensor,
    edge_weight: Tensor | None = None,
    create_graph: bool = False,
    steps: int = 20,
) -> list[Tensor]:
    """Integrated Gradients (Sundararajan et al. 2017, Eq. 1 and its Riemann sum Eq. 3) of y^c w.r.t. X.

    Straight path from the all-zero feature baseline X' = 0 to X (graph structure and edge weights are kept):
    IG_{n,d} = X_{n,d} · (1/m) Σ_{k=1..m} ∂y^c(k/m · X)/∂X_{n,d}. The m interpolated copies of the whole
    batch are stacked into one disjoint batch and differentiated in one backward pass. The node map is the
    signed sum over features, Σ_d IG_{n,d}, so by completeness the map of a graph sums to
    y^c(X) − y^c(0): a node's share of its class score. Differentiable: the map is a product of X and
    first-order gradients, so ``create_graph=True`` keeps its dependence on the parameters.
    """
    num_nodes, num_graphs = x.size(0), classes.numel()
    alphas = torch.arange(1, steps + 1, device=x.device, dtype=x.dtype) / steps  # right Riemann sum
    x_in = _input(x)
    path = (alphas.view(-1, 1, 1) * x_in.unsqueeze(0)).reshape(steps * num_nodes, -1)
    offsets = torch.arange(steps, device=x.device) * num_nodes
    ei = (edge_index.unsqueeze(0) + offsets.view(-1, 1, 1)).permute(1, 0, 2).reshape(2, -1)
    b = (batch.unsqueeze(0) + (torch.arange(steps, device=x.device) * num_graphs).view(-1, 1)).reshape(-1)
    ew = None if edge_weight is None else edge_weight.repeat(steps)
    with eval_mode(model):
        logits = model(path, ei, b, ew)
        score = class_scores(logits, classes.repeat(steps))
        (grad,) = torch.autograd.grad(score, path, create_graph=create_graph)
    avg_grad = grad.view(steps, num_nodes, -1).mean(0)
    attribution = (x_in if create_graph else x_in.detach()) * avg_grad
    return [attribution.sum(-1)]


# ---- Guided Backprop -----------------------------------------------------------------------------------------


class _GuidedReLU(torch.autograd.Function):
    """ReLU whose backward also zeroes negative incoming gradients (Springenberg et al. 2015, Eq. in 3.4):
    R^l = (f^l > 0) · (R^{l+1} > 0) · R^{l+1}. The backward is built from differentiable ops, so a loss on
    the resulting gradients can itself be back-propagated (``create_graph=True``)."""

    @staticmethod
    def forward(ctx: Any, inp: Tensor) -> Tensor:
        ctx.save_for_backward(inp)
        return inp.clamp(min=0)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> Tensor:
        (inp,) = ctx.saved_tensors
        return grad_out.clamp(min=0) * (inp > 0).to(grad_out.dtype)


class GuidedReLUMode(TorchFunctionMode):
    """Within this context every ``torch.relu`` / ``F.relu`` / ``Tensor.relu`` (hence every ``nn.ReLU``)
    runs as a guided ReLU. A torch-function mode lives on the current thread's mode stack only while the
    ``with`` block runs: nothing is registered on any module, so nothing can leak into other models, other
    calls or other threads (Ray trials). In-place ``relu_`` is left untouched (the backbones never use it).
    """

    _RELUS = frozenset({torch.relu, F.relu, Tensor.relu})

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if func in self._RELUS:
            return _GuidedReLU.apply(args[0])
        return func(*args, **kwargs)


@HEATMAPS.register("guided_backprop")
def guided_backprop(
    model: nn.Module,
    x: Tensor,
    edge_index: Tensor,
    batch: Tensor,
    classes: Tensor,
    edge_weight: Tensor | None = None,
    create_graph: bool = False,
) -> list[Tensor]:
    """Guided Backprop for GNNs (Springenberg et al. 2015; Baldassarre & Azizpour 2019, section 3).

    The gradient of y^c w.r.t. the node features where, at every ReLU of the network (message-passing
    layers, GIN MLPs and the classifier head), negative gradients are set to zero on the way back
    (:class:`GuidedReLUMode`). As in Baldassarre & Azizpour's sensitivity-analysis family, the node map is the
    squared L2 norm of the node's feature gradient, Σ_d (∂y^c/∂X_{n,d})², which is smooth, so with
    ``create_graph=True`` the map is differentiable w.r.t. the parameters (through the guided backward).
    """
    x_in = _input(x)
    with eval_mode(model), GuidedReLUMode():
        logits = model(x_in, edge_index, batch, edge_weight)
    (grad,) = torch.autograd.grad(class_scores(logits, classes), x_in, create_graph=create_graph)
    return [grad.pow(2).sum(-1)]


# ---- GNNExplainer --------------------------------------------------------------------------------------------

_GNNEXP_COEFFS = {"node_feat_size": 1.0, "node_feat_ent": 0.1, "EPS": 1e-15}  # PyG GNNExplainer defaults


def _gnnexplainer_objective(
    model: nn.Module,
    logit_mask: Tensor,
    x: Tensor,
    edge_index: Tensor,
    batch: Tensor,
    classes: Tensor,
    edge_weight: Tensor | None,
    num_graphs: int,
) -> Tensor:
    """GNNExplainer's loss for an object-level node mask (Ying et al. 2019, Eq. 4 plus the size and entropy
    regularisers; PyG's coefficients), summed over graphs so that each graph's mask is optimised as if it
    were explained alone: CE(f(X ⊙ σ(M)), c) + a·mean_n σ(M_n) + b·mean_n H(σ(M_n)) per graph."""
    m = logit_mask.sigmoid()
    logits = model(x * m.unsqueeze(-1), edge_index, batch, edge_weight)
    ce = F.cross_entropy(logits, classes, reduction="sum")
    eps = _GNNEXP_COEFFS["EPS"]
    ent = -m * torch.log(m + eps) - (1 - m) * torch.log(1 - m + eps)
    size = scatter(m, batch, dim=0, dim_size=num_graphs, reduce="mean").sum()
    ent_g = scatter(ent, batch, dim=0, dim_size=num_graphs, reduce="mean").sum()
    return ce + _GNNEXP_COEFFS["node_feat_size"] * size + _GNNEXP_COEFFS["node_feat_ent"] * ent_g


@HEATMAPS.register("gnnexplainer")
def gnnexplainer_heatmap(
    model: nn.Module,
    x: Tensor,
    edge_index: Tensor,
    batch: Tensor,
    classes: Tensor,
    edge_weight: Tensor | None = None,
    create_graph: bool = False,
    epochs: int = 100,
    lr: float = 0.01,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """GNNExplainer's node mask σ(M) for class c of each graph (Ying et al. 2019), the same objective as
    PyG's ``GNNExplainer`` with ``node_mask_type="object"`` (Adam, ``epochs``, ``lr``, N(0, 0.1²) init),
    optimised for all graphs of the batch at once; nodes whose first gradient is zero (e.g. all-zero
    features) get 0, as PyG's hard mask does.

    Gradient w.r.t. the model: the mask is the argmin of an inner optimisation, so it has no direct
    computational path to the parameters. With ``create_graph=True`` the map is
    σ(M* − lr·∇_M L(M*; θ)): one extra, unrolled gradient step taken at the found mask M* through the
    model's forward, i.e. truncated back-propagation through the optimiser (dM/dθ ≈ −lr·∂²L/∂M∂θ). Its value
    differs from σ(M*) by one small step; its gradient is this first-order approximation, not the exact
    implicit derivative.
    """
    num_graphs = classes.numel()
    x_const = x.detach()
    ew_const = None if edge_weight is None else edge_weight.detach()
    init = torch.randn(x.size(0), generator=generator, dtype=x.dtype) * 0.1  # CPU draw: device-agnostic
    logit_mask = init.to(x.device).requires_grad_(True)
    optimizer = torch.optim.Adam([logit_mask], lr=lr)
    hard = None
    with eval_mode(model):
        with frozen_params(model):
            for epoch in range(epochs):
                optimizer.zero_grad()
                loss = _gnnexplainer_objective(
                    model, logit_mask, x_const, edge_index, batch, classes, ew_const, num_graphs
                )
                loss.backward()
                if epoch == 0:
                    hard = logit_mask.grad != 0
                optimizer.step()
        found = logit_mask.detach()
        if not create_graph:
            mask = found.sigmoid()
        else:
            m = found.clone().requires_grad_(True)
            loss = _gnnexplainer_objective(model, m, x, edge_index, batch, classes, edge_weight, num_graphs)
            (g,) = torch.autograd.grad(loss, m, create_graph=True)
            mask = (m - lr * g).sigmoid()
    if hard is not None:
        mask = mask * hard.to(mask.dtype)
    return [mask]
