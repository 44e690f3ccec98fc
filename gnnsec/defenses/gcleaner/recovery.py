"""Graph trigger recovery via an explanation method (GCleaner section 4.3, Eq. 5-8).

For every clean graph an explainer scores the nodes under the backdoored model; the n least important nodes
are replaced by a trigger that a generator makes from their features (Eq. 6)::

    h = MLP(x_{v_1} ‖ … ‖ x_{v_n}),   X_t = σ(W_f h) ∈ [0,1]^{n×d},   A_t = σ(W_a h) ∈ [0,1]^{n×n} (symmetric)

A_t is binarised in the forward pass (A_t > 0.5) with a straight-through gradient (the continuous values are
used in the backward pass, as for binary neural networks). The triggered graph keeps every edge that is not
internal to the n nodes (weight 1) and gets *all* candidate pairs among them with edge weight = binarised
A_t, so the backdoored model sees exactly the binarised trigger while gradients reach the generator (a
weight multiplies a message; 0 is a removed edge). Degree features follow the weighted degree (see
:func:`gnnsec.data.features.degree_onehot`); native features of the n nodes are replaced by X_t.

The generator minimises the hinge of Eq. 8 with the sign that makes triggered graphs *similar*::

    L_t = mean_{p≠q∈B} max(0, T − cos(F(G'_p), F(G'_q)))      (−L_pq = cos, Eq. 7)

on the backdoored model's outputs F(G') (``similarity_on``: logits by default, or the readout embedding;
see the package docstring), as a mean instead of the paper's sum (only the step size differs).

Departure (the defender must find the backdoor's class, which Eq. 8 alone does not name): recovery runs
once per class c, on the clean graphs of the other classes, with ``L_t + class_weight · CE(F(G'), c)``
(the per-class trigger search of Neural Cleanse, Wang et al., S&P 2019). Each class's trigger is scored by
how many correctly classified graphs of other classes it sends to c on the defender's *validation* graphs
(held out from the generator, so a graph-specific adversarial trigger does not score); the class that
stands out is the backdoor's class, and the model is believed backdoored only when it stands out enough
(:func:`recover`). Within a class, restarts are ranked by flip rate on the fit graphs, with the
similarity breaking near-ties.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from gnnsec.attacks.inject import binarize, soft_inject
from gnnsec.data.features import Featurizer
from gnnsec.defenses.gcleaner.params import GCleanerParams
from gnnsec.defenses.gcleaner.signals import anomaly_index, flip_rate
from gnnsec.defenses.gcleaner.trigger import (
    Placement,
    RecoveredTrigger,
    TriggerGenerator,
    least_important,
    selected_features,
)
from gnnsec.models.graph import ModelOutput
from gnnsec.similarity import mean_pairwise_cosine
from gnnsec.train import make_loader

log = logging.getLogger(__name__)

# restarts are ranked by flip rate + SIMILARITY_WEIGHT × mean pairwise cosine: the flip rate decides, the
# similarity (the recovery objective itself) breaks near-ties
SIMILARITY_WEIGHT = 0.1


# ---- the defender's signals ----------------------------------------------------------------------------
def similarity_hinge(emb: Tensor, threshold: float) -> Tensor:
    """Eq. 8 with −L_pq = cos: mean over ordered pairs p ≠ q of max(0, T − cos(e_p, e_q))."""
    n = emb.size(0)
    if n < 2:
        return emb.sum() * 0.0
    z = nn.functional.normalize(emb, dim=-1)
    hinge = torch.relu(threshold - z @ z.t())
    return (hinge.sum() - hinge.diagonal().sum()) / (n * (n - 1))


@dataclass
class ClassEvidence:
    """How easily a recovered n-node trigger sends clean graphs of *other* classes to class ``cls``."""

    cls: int
    flip: float  # on the validation graphs (held out from the generator), else on all (fit + validation)
    n: int  # graphs the flip rate was measured on
    fit_flip: float  # on the fit graphs the generator was trained on
    similarity: float  # mean pairwise cosine of the model's outputs on the triggered fit graphs
    loss: float  # recovery objective on the fit graphs
    restart: int
    held_out: bool  # ``flip`` is measured on the validation graphs only


@dataclass
class RecoveryResult:
    trigger: RecoveredTrigger  # the trigger of the class the defender believes is the backdoor's
    target: int  # that class (the defender's estimate; never the real target label)
    believed: bool  # whether the evidence says the model is backdoored at all
    gap: float  # flip of ``target`` minus the median flip of the other classes
    anomaly_index: float  # Neural-Cleanse MAD anomaly index of ``target`` (NaN for fewer than 3 classes)
    evidence: list[ClassEvidence]
    restarts: list[dict[str, float]]
    placement: Placement  # of the fit graphs
    val_placement: Placement | None  # of the validation graphs
    triggers: dict[int, RecoveredTrigger] = field(default_factory=dict)  # every class's trigger
    sizes: dict[int, int] = field(default_factory=dict)  # trigger size n per class (sizes.py)

    @property
    def chosen(self) -> ClassEvidence:
        return next(e for e in self.evidence if e.cls == self.target)


def _train_generator(
    model: nn.Module,
    graphs: list[Data],
    place: Placement,
    featurizer: Featurizer,
    p: GCleanerParams,
    seed: int,
    target: int | None,
) -> tuple[TriggerGenerator, float]:
    """Train one generator; return it at the epoch with the lowest recovery loss on all ``graphs``
    (binarised trigger, evaluated after every epoch), and that loss."""
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
            loss = _recovery_loss(model, gen, batch, place.index(idx), featurizer, p, target)
            if not loss.requires_grad:  # n = 1 with degree features: no edge to learn, features follow degree
                continue
            opt.zero_grad()
            loss.backward()
            opt.step()
        gen.eval()
        with torch.no_grad():
            loss = float(_recovery_loss(model, gen, full, place, featurizer, p, target))
        log.debug("recovery epoch %d: loss %.4f", epoch, loss)
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
    target: int | None,
) -> Tensor:
    """Eq. 8 (similarity hinge), plus ``class_weight`` × cross-entropy towards ``target`` when given."""
    feats, adj = gen(selected_features(batch, place))
    x, ei, w = soft_inject(batch, place.positions, place.mask, binarize(adj), feats, featurizer)
    out = model.forward_full(x, ei, batch.batch, w)
    loss = similarity_hinge(_space(out, p.similarity_on), p.threshold)
    if target is not None and p.class_weight > 0:
        labels = torch.full((batch.num_graphs,), target, dtype=torch.long, device=out.logits.device)
        loss = loss + p.class_weight * nn.functional.cross_entropy(out.logits, labels)
    return loss


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


# a class's flip rate is measured on the validation graphs when at least this many are eligible (correctly
# classified, of another class); otherwise on all the defender's graphs (fit + validation)
MIN_HELD_OUT = 3


def _frozen(model: nn.Module) -> nn.Module:
    frozen = copy.deepcopy(model).eval()
    for param in frozen.parameters():
        param.requires_grad_(False)
    return frozen


def recover(
    model: nn.Module,
    graphs: Sequence[Data],
    featurizer: Featurizer,
    num_classes: int,
    p: GCleanerParams,
    seed: int,
    val_graphs: Sequence[Data] = (),
) -> RecoveryResult:
    """Recover one trigger per class from the backdoored ``model`` and the defender's clean fit ``graphs``,
    measure how easily each sends other classes' graphs to its class, and pick the outlier.

    With ``class_weight > 0`` (default) the generator for class c minimises Eq. 8 plus the cross-entropy
    of the triggered fit graphs towards c (all of them, as Neural Cleanse uses every clean sample) (the per-class search of Neural Cleanse, with a
    fixed trigger size n instead of a minimised mask norm: "how small a change" becomes "how much n nodes
    achieve"). With ``class_weight = 0`` it is the paper's class-agnostic Eq. 8 recovery, run once, and
    every class is scored with the same trigger. The class with the highest flip rate is the defender's
    estimate of the backdoor's class; the model is believed backdoored when that rate is at least
    ``detect_flip`` and exceeds the median rate of the other classes by at least ``detect_gap``.
    """
    graphs, val_graphs = list(graphs), list(val_graphs)
    if len(graphs) < 2:
        raise ValueError("trigger recovery needs at least 2 clean graphs")
    frozen = _frozen(model)
    place = least_important(p.recovery_explainer, frozen, graphs, p.n, seed)
    val_place = least_important(p.recovery_explainer, frozen, val_graphs, p.n, seed) if val_graphs else None
    targeted = p.class_weight > 0
    labels = [int(g.y) for g in graphs]
    triggers: dict[int, RecoveredTrigger] = {}
    evidence: list[ClassEvidence] = []
    rows: list[dict[str, float]] = []
    for c in range(num_classes) if targeted else [None]:
        if c is not None and all(y == c for y in labels):
            continue  # no graph of another class to send to c
        best: tuple[float, RecoveredTrigger, dict[str, float]] | None = None
        for r in range(p.restarts):
            rseed = seed * 1000 + 100 * (0 if c is None else c + 1) + r
            gen, loss = _train_generator(frozen, graphs, place, featurizer, p, rseed, c)
            trig = RecoveredTrigger(gen, frozen, featurizer, p.recovery_explainer, seed)
            triggered = trig.inject(graphs, place)
            sim = float(mean_pairwise_cosine(_outputs(frozen, triggered, p.similarity_on)))
            flip = flip_rate(frozen, graphs, triggered, num_classes, c)
            rate = 0.0 if flip.rate != flip.rate else flip.rate
            row = {"class": float(flip.target), "restart": r, "loss": loss, "similarity": sim, "flip": rate}
            rows.append(row)
            log.info(
                "recovery class %s restart %d: loss %.4f, similarity %.3f, flip %.3f to class %d",
                "any" if c is None else c,
                r,
                loss,
                sim,
                rate,
                flip.target,
            )
            score = rate + SIMILARITY_WEIGHT * sim
            if best is None or score > best[0]:
                best = (score, trig, row)
        assert best is not None
        _, trig, row = best
        fit_trig = trig.inject(graphs, place)
        val_trig = trig.inject(val_graphs, val_place) if val_graphs else []
        for k in range(num_classes) if c is None else [c]:
            fit_flip = flip_rate(frozen, graphs, fit_trig, num_classes, k)
            held = flip_rate(frozen, val_graphs, val_trig, num_classes, k) if val_graphs else None
            use_held = held is not None and held.n >= MIN_HELD_OUT
            # too few eligible validation graphs: all the defender's graphs (fit + validation)
            chosen = (
                held
                if use_held
                else flip_rate(frozen, graphs + val_graphs, fit_trig + val_trig, num_classes, k)
            )
            evidence.append(
                ClassEvidence(
                    cls=k,
                    flip=0.0 if chosen.rate != chosen.rate else chosen.rate,  # type: ignore[union-attr]
                    n=chosen.n,  # type: ignore[union-attr]
                    fit_flip=fit_flip.rate,
                    similarity=row["similarity"],
                    loss=row["loss"],
                    restart=int(row["restart"]),
                    held_out=use_held,
                )
            )
            triggers[k] = trig
    if not evidence:
        raise ValueError("trigger recovery needs at least 2 clean graphs outside some class")
    target, believed, gap, anomaly = verdict(evidence, p)
    for e in evidence:
        log.info(
            "class %d evidence: flip %.3f on %d %s graphs (fit flip %.3f, similarity %.3f)",
            e.cls,
            e.flip,
            e.n,
            "validation" if e.held_out else "fit",
            e.fit_flip,
            e.similarity,
        )
    log.info(
        "recovery verdict: %s (class %d, flip %.3f, gap %.3f, anomaly index %.2f; thresholds flip >= %.2f, "
        "gap >= %.2f)",
        "backdoored" if believed else "no backdoor found",
        target,
        max(e.flip for e in evidence),
        gap,
        anomaly,
        p.detect_flip,
        p.detect_gap,
    )
    sizes = {e.cls: p.n for e in evidence}
    return RecoveryResult(
        triggers[target], target, believed, gap, anomaly, evidence, rows, place, val_place, triggers, sizes
    )


def verdict(evidence: Sequence[ClassEvidence], p: GCleanerParams) -> tuple[int, bool, float, float]:
    """The outlier class of the per-class flip rates, whether it stands out (flip >= ``detect_flip`` and
    gap to the median of the other classes >= ``detect_gap``), the gap and the MAD anomaly index."""
    flips = torch.tensor([e.flip for e in evidence])
    top = int(flips.argmax())
    others = torch.cat([flips[:top], flips[top + 1 :]])
    gap = float(flips[top] - others.median()) if len(others) else float(flips[top])
    believed = bool(flips[top] >= p.detect_flip and gap >= p.detect_gap)
    return evidence[top].cls, believed, gap, anomaly_index(flips, top)
