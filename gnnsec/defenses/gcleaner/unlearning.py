"""Trigger unlearning via graph distillation (GCleaner section 4.4, Eq. 9-14).

Teacher: the backdoored model fine-tuned on the clean set, then frozen. Student: the backdoored model. For
clean graphs G and their triggered copies G' (the recovered trigger replaces nodes in place, so the node
sets of G and G' align)::

    L_total = ||F(G') − F(G)||_2 + ||F(G) − F_frozen(G)||_2 + λ Σ_l ||H_l(G') − H_l(G)||_2
              └ L¹_unlearn ┘      └ L²_unlearn ┘             └ L_explain ┘

on the student's logits F and heatmaps H_l of class c = the label of G (multi-layer Grad-CAM by default,
Eq. 10-13, or any registered heatmap method). Heatmaps are computed with ``create_graph=True``, so
L_explain trains the student (the authors' code passes it through numpy, which drops its gradient). Each
norm is per graph; the batch takes their mean.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.utils import scatter

from gnnsec.config import TrainConfig
from gnnsec.defenses.gcleaner.params import GCleanerParams
from gnnsec.explain import heatmaps
from gnnsec.train import fit

log = logging.getLogger(__name__)
EPS = 1e-12


def graph_l2(diff: Tensor, index: Tensor | None = None, num_graphs: int | None = None) -> Tensor:
    """Mean over graphs of the per-graph L2 norm of ``diff``: rows are graphs ([B, C]), or nodes grouped by
    ``index`` ([N] node values). ``sqrt(·+ε)`` keeps the gradient finite where G' = G."""
    if index is None:
        sq = diff.pow(2).sum(-1)
    else:
        sq = scatter(diff.pow(2), index, dim=0, dim_size=num_graphs, reduce="sum")
    return torch.sqrt(sq + EPS).mean()


@dataclass
class LossTerms:
    total: Tensor
    l1: float
    l2: float
    explain: float


def unlearning_loss(
    student: nn.Module,
    teacher: nn.Module,
    clean: Batch,
    triggered: Batch,
    p: GCleanerParams,
) -> LossTerms:
    """Eq. 9 + λ·Eq. 14 for one batch of aligned (G, G') pairs."""
    zero = clean.x.new_zeros(())
    B, n_clean = clean.num_graphs, clean.num_nodes
    if triggered.num_nodes != n_clean:
        raise ValueError("G and G' must have the same nodes (the trigger replaces nodes in place)")
    x = torch.cat([clean.x, triggered.x])
    edge_index = torch.cat([clean.edge_index, triggered.edge_index + n_clean], 1)
    batch = torch.cat([clean.batch, triggered.batch + B])
    l1 = l2 = expl = zero
    if p.l1_unlearn or p.l2_unlearn:
        logits = student(x, edge_index, batch)
        f_clean, f_trig = logits[:B], logits[B:]
        if p.l1_unlearn:
            l1 = graph_l2(f_trig - f_clean)
        if p.l2_unlearn:
            with torch.no_grad():
                f_frozen = teacher(clean.x, clean.edge_index, clean.batch)
            l2 = graph_l2(f_clean - f_frozen)
    if p.l_explain and p.lam > 0 and p.heatmap.lower() != "none":
        classes = torch.cat([clean.y.view(-1), clean.y.view(-1)])
        maps = heatmaps(p.heatmap, student, x, edge_index, batch, classes, create_graph=True)
        for m in maps:
            expl = expl + graph_l2(m[n_clean:] - m[:n_clean], clean.batch, B)
    total = l1 + l2 + p.lam * expl
    return LossTerms(total, float(l1.detach()), float(l2.detach()), float(expl.detach()))


def make_teacher(model: nn.Module, graphs: Sequence[Data], p: GCleanerParams, seed: int) -> nn.Module:
    """The backdoored model fine-tuned on the clean fit graphs (cross-entropy, Adam), then frozen."""
    teacher = copy.deepcopy(model)
    if p.teacher_epochs > 0:
        device = next(model.parameters()).device
        cfg = TrainConfig(
            epochs=p.teacher_epochs,
            lr=p.teacher_lr,
            batch_size=p.batch_size,
            seed=seed,
            step_size=p.teacher_epochs,
            device=device.type,
        )
        fit(teacher, list(graphs), cfg, desc="gcleaner/teacher")
    teacher.eval()
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher


def make_optimizer(params: Sequence[nn.Parameter] | object, p: GCleanerParams) -> torch.optim.Optimizer:
    if p.optimizer == "sgd":
        return torch.optim.SGD(params, lr=p.lr, momentum=p.momentum)  # type: ignore[arg-type]
    return torch.optim.Adam(params, lr=p.lr)  # type: ignore[arg-type]


class EarlyStop(Exception):
    """Raised by an ``on_epoch`` callback to end unlearning after the current epoch (e.g. ASHA said so);
    its optional argument is the callback's row (kept in the history)."""


def unlearn(
    student: nn.Module,
    teacher: nn.Module,
    clean: Sequence[Data],
    triggered: Sequence[Data],
    p: GCleanerParams,
    seed: int,
    on_epoch: Callable[[int, dict[str, float]], dict[str, float]] | None = None,
) -> list[dict[str, float]]:
    """Train ``student`` in place on the aligned pairs; one history row per epoch (+ ``on_epoch``'s values).

    ``on_epoch(epoch, row)`` runs after every epoch with the student in eval mode; it may raise
    :class:`EarlyStop` to end training there (the row it was given is kept)."""
    device = next(student.parameters()).device
    opt = make_optimizer(student.parameters(), p)
    order = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    active = p.l1_unlearn or p.l2_unlearn or (p.l_explain and p.lam > 0 and p.heatmap.lower() != "none")
    for epoch in range(p.unlearn_epochs):
        student.train(p.student_bn == "train")
        sums = {"loss": 0.0, "l1_unlearn": 0.0, "l2_unlearn": 0.0, "l_explain": 0.0}
        perm = torch.randperm(len(clean), generator=order)
        for idx in perm.split(p.batch_size):
            if not active:
                break
            if p.student_bn == "train" and len(idx) < 2:
                continue  # BatchNorm needs two graphs
            bc = Batch.from_data_list([clean[int(i)] for i in idx]).to(device)
            bt = Batch.from_data_list([triggered[int(i)] for i in idx]).to(device)
            terms = unlearning_loss(student, teacher, bc, bt, p)
            opt.zero_grad()
            terms.total.backward()
            opt.step()
            k = len(idx)
            sums["loss"] += float(terms.total.detach()) * k
            sums["l1_unlearn"] += terms.l1 * k
            sums["l2_unlearn"] += terms.l2 * k
            sums["l_explain"] += terms.explain * k
        row = {"epoch": float(epoch), **{key: v / max(len(clean), 1) for key, v in sums.items()}}
        student.eval()
        stop = False
        if on_epoch is not None:
            try:
                row.update(on_epoch(epoch, row))
            except EarlyStop as err:
                row.update(err.args[0] if err.args else {})
                stop = True
        history.append(row)
        if stop:
            log.info("unlearning stopped early after epoch %d", epoch)
            break
    student.eval()
    return history
