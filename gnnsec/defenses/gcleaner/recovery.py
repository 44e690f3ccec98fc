"""Graph trigger recovery via an explanation method (GCleaner section 4.3, Eq. 5-8).

For every clean graph an explainer scores the nodes under the backdoored model; the n least important nodes
are replaced by a trigger that a generator makes from their features (Eq. 6)::

    h = MLP(x_{v_1} ‖ … ‖ x_{v_n}),   X_t = σ(W_f h) ∈ [0,1]^{n×d},   A_t = σ(W_a h) ∈ [0,1]^{n×n} (symmetric)

A_t is binarised in the forward pass (A_t > 0.5) with a straight-through gradient (the continuous values are
used in the backward pass, as for binary neural networks). The triggered graph keeps every edge that is not
internal to the n nodes (weight 1) and gets *all* candidate pairs among them with edge weight = binarised
A_t, so the backdoored model sees exactly the binarised trigger while gradients reach the generator (a
weight multiplies a message; 0 is a removed edge). Degree features follow the weighted degree (see
:func:`degree_onehot`); native features of the n nodes are replaced by X_t.

The generator minimises the hinge of Eq. 8 with the sign that makes triggered graphs *similar*::

    L_t = mean_{p≠q∈B} max(0, T − cos(F(G'_p), F(G'_q)))      (−L_pq = cos, Eq. 7)

on the backdoored model's outputs F(G') (``similarity_on``: logits by default, or the readout embedding;
see the package docstring), as a mean instead of the paper's sum (only the step size differs).
Recovery can land on a trigger the backdoor ignores, so it is restarted and the defender keeps the restart
its own signals rate best: how strongly the trigger flips its clean graphs to one common class
(:func:`flip_rate`), then the embeddings' similarity.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from gnnsec.attacks.base import top_k_per_graph
from gnnsec.attacks.inject import replace_subgraph
from gnnsec.data.features import Featurizer
from gnnsec.defenses.gcleaner.params import GCleanerParams
from gnnsec.explain import node_importance
from gnnsec.models.graph import ModelOutput
from gnnsec.similarity import mean_pairwise_cosine
from gnnsec.train import make_loader, predict

log = logging.getLogger(__name__)

# restarts are ranked by flip rate + SIMILARITY_WEIGHT × mean pairwise cosine: the flip rate decides, the
# similarity (the recovery objective itself) breaks near-ties
SIMILARITY_WEIGHT = 0.1


# ---- the generator (Eq. 6) ---------------------------------------------------------------------------
class TriggerGenerator(nn.Module):
    """f_θg: the n selected nodes' features → trigger features X_t [B, n, d] and soft adjacency A_t [B, n, n].

    X_t goes through a sigmoid so generated features stay in the range of the (one-hot / normalised) node
    features; the paper leaves W_f linear, which lets a trigger win by sheer feature magnitude.
    """

    def __init__(self, n: int, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.n, self.dim = n, dim
        self.mlp = nn.Sequential(nn.Linear(n * dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.w_f = nn.Linear(hidden, n * dim)
        self.pairs = n * (n - 1) // 2
        self.w_a = nn.Linear(hidden, self.pairs) if self.pairs else None
        iu = torch.triu_indices(n, n, 1)
        self.register_buffer("iu", iu, persistent=False)

    def forward(self, x_sel: Tensor) -> tuple[Tensor, Tensor]:
        B = x_sel.size(0)
        h = self.mlp(x_sel.reshape(B, self.n * self.dim))
        feats = torch.sigmoid(self.w_f(h)).view(B, self.n, self.dim)
        adj = x_sel.new_zeros(B, self.n, self.n)
        if self.w_a is not None:
            adj[:, self.iu[0], self.iu[1]] = torch.sigmoid(self.w_a(h))
            adj = adj + adj.transpose(1, 2)
        return feats, adj


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, soft: Tensor) -> Tensor:  # noqa: ANN001
        return (soft > 0.5).to(soft.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: ANN001
        return grad


def binarize(soft: Tensor) -> Tensor:
    """Forward: exactly 0/1 (soft > 0.5). Backward: identity onto ``soft`` (straight-through estimator)."""
    return _StraightThrough.apply(soft)


def degree_onehot(edge_index: Tensor, edge_weight: Tensor, num_nodes: int, cap: int) -> Tensor:
    """One-hot of the clipped weighted degree, differentiable in the edge weights.

    With d the weighted in-degree clipped to [0, cap], the row is the linear interpolation between the
    one-hots of ⌊d⌋ and ⌊d⌋+1 with weights (1 − frac(d), frac(d)). Binarised weights make d an integer, so
    the forward value is exactly :meth:`Featurizer.degree_features`; the gradient moves mass to the next
    degree bin as the degree grows.
    """
    deg = torch.zeros(num_nodes, dtype=edge_weight.dtype, device=edge_weight.device)
    deg = deg.index_add(0, edge_index[1], edge_weight).clamp(0, cap)
    low = deg.detach().floor().clamp(max=cap)
    frac = deg - low
    low_i = low.long()
    high_i = (low_i + 1).clamp(max=cap)
    out = deg.new_zeros(num_nodes, cap + 1)
    rows = torch.arange(num_nodes, device=deg.device)
    out = out.index_put((rows, low_i), 1 - frac, accumulate=True)
    return out.index_put((rows, high_i), frac, accumulate=True)


# ---- positions and injection -------------------------------------------------------------------------
@dataclass
class Placement:
    """Where the trigger goes in each graph of a batch: local node ids [B, n] and validity mask [B, n]."""

    positions: Tensor
    mask: Tensor

    def index(self, idx: Tensor) -> Placement:
        return Placement(self.positions[idx], self.mask[idx])


def least_important(
    explainer: str, model: nn.Module, graphs: Sequence[Data], n: int, seed: int, chunk: int = 256
) -> Placement:
    """The n least important nodes of every graph under ``model`` (section 4.3), padded with a mask."""
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    pos, mask = [], []
    for batch in make_loader(graphs, chunk):
        batch = batch.to(device)
        scores = node_importance(explainer, model, batch, generator=gen)
        p, m = top_k_per_graph(scores, batch, n, largest=False)
        pos.append(p)
        mask.append(m)
    if not pos:
        return Placement(torch.zeros(0, n, dtype=torch.long), torch.zeros(0, n, dtype=torch.bool))
    return Placement(torch.cat(pos), torch.cat(mask))


def selected_features(batch: Batch, place: Placement) -> Tensor:
    """Features of the selected nodes [B, n, d] (zeros where a graph has fewer than n nodes)."""
    device = batch.x.device
    pos, mask = place.positions.to(device), place.mask.to(device)
    gpos = batch.ptr[:-1].view(-1, 1) + pos
    gpos = torch.where(mask, gpos, torch.zeros_like(gpos))
    return batch.x[gpos] * mask.unsqueeze(-1).to(batch.x.dtype)


def soft_inject(
    batch: Batch, place: Placement, adj: Tensor, feats: Tensor, featurizer: Featurizer
) -> tuple[Tensor, Tensor, Tensor]:
    """The triggered batch as (x, edge_index, edge_weight), differentiable in ``adj`` and ``feats``.

    ``adj`` [B, n, n] is the binarised adjacency (0/1 forward, straight-through backward).
    """
    device = batch.x.device
    pos, mask = place.positions.to(device), place.mask.to(device)
    B, n = pos.shape
    gpos = batch.ptr[:-1].view(-1, 1) + pos
    in_trigger = torch.zeros(batch.num_nodes, dtype=torch.bool, device=device)
    in_trigger[gpos[mask]] = True
    src, dst = batch.edge_index
    keep = ~(in_trigger[src] & in_trigger[dst])
    off_diag = ~torch.eye(n, dtype=torch.bool, device=device)
    pair_ok = mask.unsqueeze(2) & mask.unsqueeze(1) & off_diag
    b, i, j = torch.nonzero(pair_ok, as_tuple=True)
    edge_index = torch.cat([batch.edge_index[:, keep], torch.stack([gpos[b, i], gpos[b, j]])], 1)
    weight = torch.cat([adj.new_ones(int(keep.sum())), adj[b, i, j]])
    if featurizer.mode == "degree":
        x = degree_onehot(edge_index, weight, batch.num_nodes, featurizer.degree_cap)
    else:
        x = batch.x.index_put((gpos[mask],), feats[mask].to(batch.x.dtype))
    return x, edge_index, weight


# ---- the defender's signals ----------------------------------------------------------------------------
@dataclass
class FlipStats:
    """How strongly a trigger moves clean graphs to one common class ``target`` (the defender's estimate).

    ``rate`` = share of the graphs the model classifies correctly without the trigger, whose label is not
    ``target``, that the trigger sends to ``target``; ``target`` maximises it unless it is given.
    """

    rate: float
    target: int
    n: int


def flip_rate(
    model: nn.Module,
    clean: Sequence[Data],
    triggered: Sequence[Data],
    num_classes: int,
    target: int | None = None,
) -> FlipStats:
    if len(clean) == 0:
        return FlipStats(float("nan"), -1 if target is None else target, 0)
    labels = torch.cat([g.y.view(-1) for g in clean]).cpu()
    before, after = predict(model, clean), predict(model, triggered)
    best = FlipStats(float("nan"), -1, 0)
    for c in range(num_classes) if target is None else [target]:
        eligible = (labels != c) & (before == labels)
        count = int(eligible.sum())
        rate = float((after[eligible] == c).float().mean()) if count else float("nan")
        if best.target < 0 or (count and (best.rate != best.rate or rate > best.rate)):
            best = FlipStats(rate, c, count)
    return best


def similarity_hinge(emb: Tensor, threshold: float) -> Tensor:
    """Eq. 8 with −L_pq = cos: mean over ordered pairs p ≠ q of max(0, T − cos(e_p, e_q))."""
    n = emb.size(0)
    if n < 2:
        return emb.sum() * 0.0
    z = nn.functional.normalize(emb, dim=-1)
    hinge = torch.relu(threshold - z @ z.t())
    return (hinge.sum() - hinge.diagonal().sum()) / (n * (n - 1))


# ---- the recovered trigger -------------------------------------------------------------------------------
class RecoveredTrigger:
    """A trained generator plus how to place it: injects the binarised recovered trigger into any graphs.

    Placement runs the explainer with the backdoored model it was recovered from (kept as a frozen copy).
    """

    def __init__(
        self,
        generator: TriggerGenerator,
        model: nn.Module,
        featurizer: Featurizer,
        explainer: str,
        seed: int,
    ) -> None:
        self.generator = generator.eval()
        self.model = model.eval()
        self.featurizer = featurizer
        self.explainer = explainer
        self.seed = seed

    @property
    def n(self) -> int:
        return self.generator.n

    def place(self, graphs: Sequence[Data]) -> Placement:
        return least_important(self.explainer, self.model, graphs, self.n, self.seed)

    def inject(self, graphs: Sequence[Data], place: Placement | None = None, chunk: int = 256) -> list[Data]:
        """The graphs with the trigger replacing their n least important nodes (labels untouched)."""
        graphs = list(graphs)
        place = place if place is not None else self.place(graphs)  # explainers need autograd
        with torch.no_grad():
            return self._inject(graphs, place, chunk)

    def _inject(self, graphs: list[Data], place: Placement, chunk: int) -> list[Data]:
        device = next(self.model.parameters()).device
        out: list[Data] = []
        for start in range(0, len(graphs), chunk):
            batch = Batch.from_data_list(graphs[start : start + chunk]).to(device)
            part = place.index(torch.arange(start, start + batch.num_graphs))
            feats, adj = self.generator(selected_features(batch, part))
            hard = (adj > 0.5).float()
            injected = replace_subgraph(
                batch, part.positions.to(device), part.mask.to(device), hard, feats, self.featurizer
            )
            out.extend(injected.cpu().to_data_list())
        return out

    __call__ = inject


@dataclass
class RecoveryResult:
    trigger: RecoveredTrigger
    restart: int
    loss: float  # Eq. 8 on the defender's fit graphs with the binarised trigger
    similarity: float  # mean pairwise cosine of the model's outputs on them (``similarity_on`` space)
    flip: FlipStats
    restarts: list[dict[str, float]]
    placement: Placement  # of the fit graphs


def _train_generator(
    model: nn.Module,
    graphs: list[Data],
    place: Placement,
    featurizer: Featurizer,
    p: GCleanerParams,
    seed: int,
) -> tuple[TriggerGenerator, float]:
    """Train one generator; return it at the epoch with the lowest Eq. 8 loss on all ``graphs`` (binarised
    trigger, evaluated after every epoch), and that loss."""
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    gen = TriggerGenerator(p.n, graphs[0].x.size(1), p.generator_hidden).to(device)
    opt = torch.optim.Adam(gen.parameters(), lr=p.recovery_lr)
    order_gen = torch.Generator().manual_seed(seed)
    full = Batch.from_data_list(graphs).to(device)
    best_loss, best_state = float("inf"), copy.deepcopy(gen.state_dict())
    for epoch in range(p.recovery_epochs):
        gen.train()
        perm = torch.randperm(len(graphs), generator=order_gen)
        for idx in perm.split(p.recovery_batch_size):
            if len(idx) < 2:
                continue
            batch = Batch.from_data_list([graphs[int(i)] for i in idx]).to(device)
            loss = _recovery_loss(model, gen, batch, place.index(idx), featurizer, p)
            if not loss.requires_grad:  # n = 1 with degree features: no edge to learn, features follow degree
                continue
            opt.zero_grad()
            loss.backward()
            opt.step()
        gen.eval()
        with torch.no_grad():
            loss = float(_recovery_loss(model, gen, full, place, featurizer, p))
        log.debug("recovery epoch %d: similarity loss %.4f", epoch, loss)
        if loss < best_loss:
            best_loss, best_state = loss, copy.deepcopy(gen.state_dict())
    gen.load_state_dict(best_state)
    return gen.eval(), best_loss


def _recovery_loss(
    model: nn.Module,
    gen: TriggerGenerator,
    batch: Batch,
    place: Placement,
    featurizer: Featurizer,
    p: GCleanerParams,
) -> Tensor:
    feats, adj = gen(selected_features(batch, place))
    x, ei, w = soft_inject(batch, place, binarize(adj), feats, featurizer)
    out = model.forward_full(x, ei, batch.batch, w)
    return similarity_hinge(_space(out, p.similarity_on), p.threshold)


def _space(out: ModelOutput, name: str) -> Tensor:
    return out.logits if name == "logits" else out.embedding


@torch.no_grad()
def _outputs(model: nn.Module, graphs: Sequence[Data], space: str = "embedding") -> Tensor:
    device = next(model.parameters()).device
    out = [
        _space(model.forward_full(b.x, b.edge_index, b.batch), space)
        for b in (b.to(device) for b in make_loader(graphs, 256))
    ]
    return torch.cat(out)


def recover(
    model: nn.Module,
    graphs: Sequence[Data],
    featurizer: Featurizer,
    num_classes: int,
    p: GCleanerParams,
    seed: int,
) -> RecoveryResult:
    """Recover a trigger from the backdoored ``model`` and the defender's clean ``graphs`` (with restarts)."""
    graphs = list(graphs)
    if len(graphs) < 2:
        raise ValueError("trigger recovery needs at least 2 clean graphs")
    frozen = copy.deepcopy(model).eval()
    for param in frozen.parameters():
        param.requires_grad_(False)
    place = least_important(p.recovery_explainer, frozen, graphs, p.n, seed)
    best: RecoveryResult | None = None
    best_score = -float("inf")
    rows: list[dict[str, float]] = []
    for r in range(p.restarts):
        gen, _ = _train_generator(frozen, graphs, place, featurizer, p, seed * 1000 + r)
        trig = RecoveredTrigger(gen, frozen, featurizer, p.recovery_explainer, seed)
        triggered = trig.inject(graphs, place)
        emb = _outputs(frozen, triggered, p.similarity_on)
        loss = float(similarity_hinge(emb, p.threshold))
        sim = float(mean_pairwise_cosine(emb))
        flip = flip_rate(frozen, graphs, triggered, num_classes)
        score = (0.0 if flip.rate != flip.rate else flip.rate) + SIMILARITY_WEIGHT * sim
        rows.append({"restart": r, "loss": loss, "similarity": sim, "flip": flip.rate, "target": flip.target})
        log.info(
            "recovery restart %d: loss %.4f, similarity %.3f, flip %.3f to class %d",
            r,
            loss,
            sim,
            flip.rate,
            flip.target,
        )
        if score > best_score:
            best_score = score
            best = RecoveryResult(trig, r, loss, sim, flip, rows, place)
    assert best is not None
    return best
