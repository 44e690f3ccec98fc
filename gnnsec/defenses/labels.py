"""Pseudo-labelling of a defender's graphs: the one place that labels graphs with a model's predictions.

Used for auxiliary clean data from another dataset (GCleaner Table 5), whose own labels mean nothing to the
suspect model, by the pipeline (``defense.auxiliary_dataset``) and by GCleaner (``pseudo_labels``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torch_geometric.data import Data

from gnnsec.train import predict


def pseudo_labelled(model: nn.Module, graphs: Sequence[Data]) -> list[Data]:
    """Copies of ``graphs`` labelled with ``model``'s predictions (the inputs are left untouched)."""
    out = []
    for g, pred in zip(graphs, predict(model, graphs)):
        g = g.clone()
        g.y = pred.view(1)
        out.append(g)
    return out
