"""Verifying backdoor unlearning with the Forget-and-Explain attribution metrics (beyond the paper).

Does a defense erase the trigger's influence, or only hide it at the output? On triggered test graphs we
compare the backdoored model (before) with the defended model (after), the same way the node verifier
compares a model before and after unlearning, with the real trigger's nodes in the role of the forget set:

- per graph G with trigger nodes T(G), vanilla saliency s_v = Σ_j |∂ℓ(f(G), y_t)/∂X_vj| with ℓ the
  cross-entropy towards the attacker's target label y_t (how much each node pushes towards the target);
- ``trigger_ra`` = mean over graphs of Σ_{v∈T(G)} s_v / Σ_v s_v (RA on the trigger), for each model;
  ``trigger_node_share`` = mean |T(G)|/|G|, the RA of a model that attends uniformly;
- ``trigger_hs`` = mean over graphs of (1/|G|) Σ_v |ŝ_v - ŝ'_v| (heatmap shift, ŝ = s / max s per graph).

Only the evaluation calls this (it knows the real trigger); defenses never see it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from gnnsec.train import make_loader


def graph_saliency(
    model: nn.Module, graphs: Sequence[Data], target: int, batch_size: int = 256
) -> list[Tensor]:
    """Per graph, s_v = Σ_j |∂ CE(f(G), target) / ∂X_vj| (graphs are independent in a batch)."""
    model.eval()
    device = next(model.parameters()).device
    out: list[Tensor] = []
    for batch in make_loader(graphs, batch_size):
        batch = batch.to(device)
        x = batch.x.clone().requires_grad_(True)
        logits = model(x, batch.edge_index, batch.batch, getattr(batch, "edge_weight", None))
        y = torch.full((batch.num_graphs,), target, dtype=torch.long, device=device)
        loss = nn.functional.cross_entropy(logits, y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
        s = grad.abs().sum(1).cpu()
        ptr = batch.ptr.tolist()
        out.extend(s[ptr[i] : ptr[i + 1]] for i in range(batch.num_graphs))
    return out


def trigger_attribution(saliencies: Sequence[Tensor], masks: Sequence[Tensor]) -> float:
    """Mean over graphs of the share of attribution on the trigger nodes (graphs with zero total skipped)."""
    shares = [float(s[m].sum() / s.sum()) for s, m in zip(saliencies, masks) if float(s.sum()) > 0]
    return float(np.mean(shares)) if shares else float("nan")


def heatmap_shift_graphs(pre: Sequence[Tensor], post: Sequence[Tensor]) -> float:
    def norm(s: Tensor) -> Tensor:
        m = float(s.max()) if s.numel() else 0.0
        return s / m if m > 0 else torch.zeros_like(s)

    return float(np.mean([float((norm(a) - norm(b)).abs().mean()) for a, b in zip(pre, post)]))


def verify_backdoor_unlearning(
    before: nn.Module,
    after: nn.Module,
    triggered: Sequence[Data],
    masks: Sequence[Tensor],
    target: int,
) -> dict[str, float]:
    """The metrics above on the ``triggered`` test graphs, whose trigger nodes ``masks`` flags
    (``Attack.inject_with_masks``)."""
    if not triggered:
        return {}
    s_pre = graph_saliency(before, triggered, target)
    s_post = graph_saliency(after, triggered, target)
    share = float(np.mean([float(m.float().mean()) for m in masks]))
    ra_pre, ra_post = trigger_attribution(s_pre, masks), trigger_attribution(s_post, masks)
    return {
        "trigger_ra_backdoor": ra_pre,
        "trigger_ra_defended": ra_post,
        "trigger_ra_drop": ra_pre - ra_post,
        "trigger_hs": heatmap_shift_graphs(s_pre, s_post),
        "trigger_node_share": share,
        "trigger_verify_n": float(len(triggered)),
    }
