"""Backdoor metrics (GCleaner Eq. 15): ASR, clean-correct ASR and the clean model's floor on the same graphs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.data import Data

from gnnsec.train import predict


def attack_success(
    model: nn.Module,
    triggered: Sequence[Data],
    target: int,
    clean_predictions: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> dict[str, float]:
    """ASR over ``triggered`` (graphs whose true label is not the target, trigger injected).

    With the model's predictions on the same graphs *without* the trigger, also the clean-correct ASR:
    counted only over graphs that the model classifies correctly without the trigger.
    """
    preds = predict(model, triggered)
    hit = preds == target
    out = {"asr": float(hit.float().mean()) if len(hit) else float("nan"), "asr_n": float(len(hit))}
    if clean_predictions is not None and labels is not None:
        correct = clean_predictions == labels
        out["asr_cc"] = float(hit[correct].float().mean()) if bool(correct.any()) else float("nan")
        out["asr_cc_n"] = float(correct.sum())
    return out
