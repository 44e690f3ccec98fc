"""A cross-fitted "do no harm" guard: judge the unlearning schedule on *all* the defender's clean graphs.

Why (measured, Fingerprint, GIN, seeds 0-2, 50 holding graphs = 30 fit + 20 validation; see
``docs/gcleaner_protocol.md``): the single-split guard judges every unlearning epoch on 20 validation graphs,
where one graph is 5 accuracy points. It accepted epochs that cost 4-6 test points (Exp-BA seed 0: test ACC
60.1 → 53.7 %) and rejected epochs that cost none (GTA seed 0 at lr 3e-3: epochs 6-29 lost two of 20
validation graphs while test ACC came back to 58.0 % and test ASR fell to 0-1 % from epoch 15; the guard
kept epoch 5, ASR 49.5 %). Test graphs were read for this diagnosis only; nothing here reads them.

What: K-fold cross-fitting of the unlearning step (the standard way to estimate how a *procedure* does on
unseen data when data are scarce). The defender's clean graphs are split into K stratified folds; for each
fold the teacher (Eq. 9's F_frozen, fine-tuned) and the student are trained on the other K−1 folds exactly
as GCleaner's unlearning would be (section 4.4), and after every epoch the student is measured on the
held-out fold. Pooling the folds gives, per epoch, the accuracy, class balance, flip rate of the recovered
trigger and their soft counterparts on *every* clean graph, each measured by a student that did not train on
it: 50 graphs instead of 20 on Fingerprint (one graph = 2 points). The guard (:func:`defense._guard`) is
applied to those pooled signals, the epoch count is chosen among the accepted epochs by the defender-only
objective J of the development protocol (soft accuracy − trigger probability, ``sweeps/tuning.py``), and the
returned model is unlearned on all the clean graphs for that many epochs at that learning rate.

Trigger recovery and the detection verdict are unchanged (they keep their own fit / validation split).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import KFold, StratifiedKFold
from torch import Tensor, nn
from torch_geometric.data import Data

from gnnsec.defenses.gcleaner.params import GCleanerParams
from gnnsec.defenses.gcleaner.signals import class_probs
from gnnsec.defenses.gcleaner.unlearning import make_teacher, unlearn

log = logging.getLogger(__name__)

# a fold must leave at least this many graphs out (below: fewer folds; below 2 folds: no cross-fitting)
MIN_FOLD = 2


def fold_count(n_graphs: int, folds: int) -> int:
    """How many folds ``n_graphs`` clean graphs support: ``folds``, fewer when a fold would hold fewer than
    ``MIN_FOLD`` graphs; 0 (no cross-fitting) below two folds."""
    k = min(folds, n_graphs // MIN_FOLD)
    return k if k >= 2 else 0


def make_folds(labels: Sequence[int], folds: int, seed: int) -> list[np.ndarray]:
    """Held-out indices of each fold: stratified by label when every class has at least ``folds`` graphs."""
    y = np.asarray(labels)
    idx = np.arange(len(y))
    counts = np.bincount(y)
    strat = counts[counts > 0].min() >= folds
    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=seed)
        if strat
        else KFold(folds, shuffle=True, random_state=seed)
    )
    return [held for _, held in splitter.split(idx, y if strat else None)]


@dataclass
class EpochOutputs:
    """What one student says about its held-out graphs after one epoch (CPU tensors, fold order)."""

    probs: Tensor  # [n, C] class probabilities of the clean graphs
    trig_probs: Tensor  # [n, C] class probabilities of their triggered copies


def outputs(model: nn.Module, clean: Sequence[Data], triggered: Sequence[Data]) -> EpochOutputs:
    return EpochOutputs(class_probs(model, clean), class_probs(model, triggered))


def pooled_signals(out: EpochOutputs, labels: Tensor, num_classes: int, target: int) -> dict[str, float]:
    """The guard's signals from outputs pooled over all clean graphs (the names the single-split guard
    uses; ``val_*`` are out-of-fold here). ``fit_flip`` mirrors ``val_flip`` (no in-sample part)."""
    pred, trig_pred = out.probs.argmax(-1), out.trig_probs.argmax(-1)
    n = len(labels)
    pred_share = torch.bincount(pred, minlength=num_classes).float() / n
    true_share = torch.bincount(labels, minlength=num_classes).float() / n
    eligible = (labels != target) & (pred == labels)
    flip = float((trig_pred[eligible] == target).float().mean()) if eligible.any() else float("nan")
    others = labels != target
    return {
        "n_acc": float(n),
        "val_acc": float((pred == labels).float().mean()),
        "val_flip": flip,
        "fit_flip": flip,
        "balance_shift": float(0.5 * (pred_share - true_share).abs().sum()),
        "collapsed": float(pred.unique().numel() == 1 and labels.unique().numel() > 1),
        "val_soft_acc": float(out.probs.gather(1, labels.view(-1, 1)).mean()),
        "val_trigger_prob": float(out.trig_probs[others, target].mean()) if others.any() else float("nan"),
        "n_flip": float(eligible.sum()),
    }


def objective(sig: dict[str, float], before: dict[str, float]) -> float:
    """The development protocol's J (``sweeps/tuning.py``): soft accuracy + drop of the trigger probability."""
    drop = before["val_trigger_prob"] - sig["val_trigger_prob"]
    return sig["val_soft_acc"] + (0.0 if drop != drop else drop)


def crossfit_rows(
    model: nn.Module,
    graphs: Sequence[Data],
    triggered: Sequence[Data],
    folds: list[np.ndarray],
    num_classes: int,
    target: int,
    p: GCleanerParams,
    seed: int,
) -> list[dict[str, float]]:
    """Per unlearning epoch, the guard's signals pooled out of fold (K students, each trained as GCleaner's
    unlearning on the other folds' graphs and measured on its own held-out fold after every epoch)."""
    per_epoch: list[list[EpochOutputs]] = [[] for _ in range(p.unlearn_epochs)]
    order: list[int] = []
    for i, held in enumerate(folds):
        held_set = set(held.tolist())
        fit_idx = [j for j in range(len(graphs)) if j not in held_set]
        fit, fit_t = [graphs[j] for j in fit_idx], [triggered[j] for j in fit_idx]
        held_g, held_t = [graphs[j] for j in held], [triggered[j] for j in held]
        teacher = make_teacher(model, fit, p, seed + i)
        student = copy.deepcopy(model)

        def on_epoch(epoch: int, row: dict[str, float], s=student, g=held_g, t=held_t) -> dict[str, float]:  # noqa: ANN001
            per_epoch[epoch].append(outputs(s, g, t))
            return {}

        unlearn(student, teacher, fit, fit_t, p, seed + i, on_epoch=on_epoch)
        order.extend(held.tolist())
    labels = torch.tensor([int(graphs[j].y) for j in order])
    rows = []
    for epoch, outs in enumerate(per_epoch):
        if len(outs) != len(folds):
            break
        pooled = EpochOutputs(torch.cat([o.probs for o in outs]), torch.cat([o.trig_probs for o in outs]))
        rows.append({"epoch": float(epoch), **pooled_signals(pooled, labels, num_classes, target)})
    return rows


def input_signals(
    model: nn.Module, graphs: Sequence[Data], triggered: Sequence[Data], num_classes: int, target: int
) -> dict[str, float]:
    """The same signals for the input model on all clean graphs (it never trained on them)."""
    labels = torch.tensor([int(g.y) for g in graphs])
    return pooled_signals(outputs(model, graphs, triggered), labels, num_classes, target)


@dataclass
class Schedule:
    """The unlearning schedule the cross-fitted guard chose (``epochs`` = 0: none was accepted)."""

    lr: float
    epochs: int
    attempts: int
    rows: list[dict[str, float]]  # the pooled per-epoch signals of the last attempt (with guard_ok, J)
    chosen: dict[str, float] | None


def choose_schedule(
    model: nn.Module,
    graphs: Sequence[Data],
    triggered: Sequence[Data],
    num_classes: int,
    target: int,
    p: GCleanerParams,
    seed: int,
    folds: int,
    before: dict[str, float],
    guard,  # noqa: ANN001  (sig, before, p) -> (ok, why)
) -> Schedule:
    """Cross-fit each learning rate of the back-off ladder (``lr``, ``lr · lr_backoff``, ...) until some
    epoch passes the guard on the pooled signals; the accepted epoch with the highest J is chosen."""
    split = make_folds([int(g.y) for g in graphs], folds, seed)
    lr, rows = p.lr, []
    for attempt in range(p.lr_retries + 1):
        if attempt:
            lr *= p.lr_backoff
            log.info("gcleaner: no cross-fitted epoch passed the guard; trying lr %.2g", lr)
        step = dataclasses.replace(p, lr=lr)
        rows = crossfit_rows(model, graphs, triggered, split, num_classes, target, step, seed)
        best: dict[str, float] | None = None
        for row in rows:
            ok, why = guard(row, before, p)
            row.update(guard_ok=float(ok), objective=objective(row, before))
            if ok and (best is None or row["objective"] > best["objective"]):
                best = row
            if not ok:
                log.debug("cross-fitted epoch %d rejected: %s", int(row["epoch"]), why)
        if best is not None:
            log.info(
                "gcleaner: cross-fitted guard (%d folds, %d graphs) chose %d epochs at lr %.2g: acc %.3f "
                "(input %.3f), flip %.3f (input %.3f), J %.3f",
                folds,
                len(graphs),
                int(best["epoch"]) + 1,
                lr,
                best["val_acc"],
                before["val_acc"],
                best["val_flip"],
                before["val_flip"],
                best["objective"],
            )
            return Schedule(lr, int(best["epoch"]) + 1, attempt + 1, rows, best)
    return Schedule(lr, 0, p.lr_retries + 1, rows, None)
