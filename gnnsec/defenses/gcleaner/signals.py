"""What the defender can measure on its own clean graphs (GCleaner's signals; no test graph, no real trigger).

- :func:`flip_rate`: how strongly a trigger sends correctly classified graphs of other classes to a class;
- :func:`anomaly_index`: Neural Cleanse's MAD outlier score over the per-class flip rates;
- :func:`prediction_signals`: accuracy, class balance of the predictions, and whether they collapsed;
- :func:`true_class_prob`, :func:`trigger_prob`: continuous counterparts of accuracy and flip rate (mean
  softmax probabilities), which rank two models that the rates tie on a small clean set (the tuner's
  objective, ``sweeps/tune_gcleaner.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from gnnsec.train import predict, predict_logits


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


def anomaly_index(values: Tensor, i: int) -> float:
    """Neural Cleanse's anomaly index of entry ``i`` (here a *high* flip rate is anomalous):
    (v_i − median) / (1.4826 · MAD); NaN with fewer than 3 classes (the MAD of two values says nothing)."""
    if values.numel() < 3:
        return float("nan")
    med = values.median()
    mad = 1.4826 * (values - med).abs().median()
    return float((values[i] - med) / mad) if mad > 0 else float("inf") if values[i] > med else 0.0


def prediction_signals(model: nn.Module, graphs: Sequence[Data], num_classes: int) -> dict[str, float]:
    """Accuracy, the total-variation distance between predicted and true class shares, and whether the
    model predicts one class for every graph (while the graphs hold more than one)."""
    labels = torch.tensor([int(g.y) for g in graphs])
    pred = predict(model, graphs)
    pred_share = torch.bincount(pred, minlength=num_classes).float() / len(graphs)
    true_share = torch.bincount(labels, minlength=num_classes).float() / len(graphs)
    return {
        "acc": float((pred == labels).float().mean()),
        "balance_shift": float(0.5 * (pred_share - true_share).abs().sum()),
        "collapsed": float(pred.unique().numel() == 1 and labels.unique().numel() > 1),
    }


def class_probs(model: nn.Module, graphs: Sequence[Data], batch_size: int = 256) -> Tensor:
    """Softmax class probabilities of ``graphs`` ([len(graphs), C], on CPU, in the order given)."""
    return predict_logits(model, graphs, batch_size).softmax(-1)


def true_class_prob(model: nn.Module, graphs: Sequence[Data]) -> float:
    """Mean probability the model gives each graph's own label (a "soft accuracy"; NaN without graphs)."""
    if len(graphs) == 0:
        return float("nan")
    labels = torch.cat([g.y.view(-1) for g in graphs]).cpu()
    return float(class_probs(model, graphs).gather(1, labels.view(-1, 1)).mean())


def trigger_prob(model: nn.Module, clean: Sequence[Data], triggered: Sequence[Data], target: int) -> float:
    """Mean probability of class ``target`` on the triggered copies of the graphs whose label is not
    ``target`` (a "soft flip rate"; NaN when there is no such graph)."""
    keep = [i for i, g in enumerate(clean) if int(g.y) != target]
    if not keep:
        return float("nan")
    return float(class_probs(model, [triggered[i] for i in keep])[:, target].mean())
