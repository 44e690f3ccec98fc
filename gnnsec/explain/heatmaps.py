"""Node heatmaps of a batch for a given class per graph: the explanation maps that GCleaner's L_explain
compares between a clean graph and its triggered copy (Eq. 14, Table 6).

Every method has one signature::

    heatmap_fn(model, x, edge_index, batch, classes, edge_weight=None, create_graph=False) -> list[Tensor]

returning one ``[num_nodes]`` map per explained layer (multi-layer Grad-CAM: one per message-passing layer;
input-attribution methods: one). With ``create_graph=True`` the maps stay differentiable w.r.t. the model's
parameters, so a loss on them trains the model.

Registered methods: "gradcam" (here, the default), "none", and in :mod:`gnnsec.explain.attributions`
"integrated_gradients", "guided_backprop", "gnnexplainer". Method-specific settings (e.g. ``steps`` for
Integrated Gradients, ``epochs`` for GNNExplainer) are keyword options passed through :func:`heatmaps`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from gnnsec.registry import Registry

HeatmapFn = Callable[..., list[Tensor]]
HEATMAPS: Registry[HeatmapFn] = Registry("heatmap method")


def class_scores(logits: Tensor, classes: Tensor) -> Tensor:
    """Sum over graphs of y^c (the logit of each graph's class); graphs are independent in the gradient."""
    return logits.gather(1, classes.view(-1, 1)).sum()


_class_scores = class_scores


@HEATMAPS.register("gradcam")
def gradcam(
    model: nn.Module,
    x: Tensor,
    edge_index: Tensor,
    batch: Tensor,
    classes: Tensor,
    edge_weight: Tensor | None = None,
    create_graph: bool = False,
) -> list[Tensor]:
    """Multi-layer Grad-CAM for GNNs (Pope et al. 2019; GCleaner Eq. 10-13).

    For layer l and graph g: α_k^{l,c} = (1/N_g) Σ_n ∂y^c/∂F^l_{k,n} (Eq. 12) and
    L^c_heat[l, n] = ReLU(Σ_k α_k^{l,c} F^l_{k,n}) (Eq. 13), computed for all graphs and layers at once.
    """
    out = model.forward_full(x, edge_index, batch, edge_weight)
    acts = out.node_activations
    grads = torch.autograd.grad(_class_scores(out.logits, classes), acts, create_graph=create_graph)
    maps = []
    for act, grad in zip(acts, grads):
        alpha = scatter(grad, batch, dim=0, reduce="mean")  # [B, K]  (Eq. 12)
        maps.append(torch.relu((alpha[batch] * act).sum(-1)))  # [N]  (Eq. 13)
    return maps


@HEATMAPS.register("none")
def no_heatmap(model: nn.Module, x: Tensor, *args: object, **kwargs: object) -> list[Tensor]:
    """No explanation term (the "Non" rows of Table 6)."""
    return []


def heatmaps(
    name: str,
    model: nn.Module,
    x: Tensor,
    edge_index: Tensor,
    batch: Tensor,
    classes: Tensor,
    edge_weight: Tensor | None = None,
    create_graph: bool = False,
    **options: Any,
) -> list[Tensor]:
    """Maps of method ``name``; ``options`` are that method's own keyword settings."""
    fn = HEATMAPS.get(name, "heatmap")
    return fn(model, x, edge_index, batch, classes, edge_weight, create_graph, **options)
