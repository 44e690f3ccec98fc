"""Fine-tuning on the defender's clean set: the simplest mitigation, and the baseline every defense must beat
(GCleaner Table 9, first row vs the others)."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from torch import nn

from gnnsec.config import TrainConfig
from gnnsec.defenses.base import DefenderData, Defense, DefenseOutcome
from gnnsec.defenses.registry import DEFENSES
from gnnsec.train import fit


@DEFENSES.register("finetune")
class FineTune(Defense):
    name = "finetune"
    param_defaults: ClassVar[dict[str, Any]] = {"epochs": 30, "lr": 1e-3, "batch_size": 64}

    def defend(self, model: nn.Module, clean: DefenderData) -> DefenseOutcome:
        tuned = copy.deepcopy(model)
        cfg = TrainConfig(
            epochs=int(self.params["epochs"]),
            lr=float(self.params["lr"]),
            batch_size=int(self.params["batch_size"]),
            seed=self.cfg.seed,
            step_size=max(1, int(self.params["epochs"])),
        )
        history = fit(tuned, list(clean.graphs), cfg, desc="finetune")
        return DefenseOutcome(tuned, {}, history)
