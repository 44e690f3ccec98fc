"""Sub-BA (Zhang et al., "Backdoor attacks to graph neural networks", SACMAT 2021; GCleaner Appendix A).

The trigger is one Erdős–Rényi graph G(k, p) (p = ``density``, default 0.8) drawn once per seed; in every
poisoned or tested graph it replaces the edges among k nodes chosen uniformly at random.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor
from torch_geometric.data import Batch

from gnnsec.attacks.base import Attack, AttackContext, Trigger, random_positions
from gnnsec.attacks.registry import ATTACKS
from gnnsec.errors import ConfigError


def erdos_renyi_adjacency(k: int, p: float, generator: torch.Generator) -> Tensor:
    """Symmetric 0/1 adjacency of G(k, p) without self-loops; redrawn until it has at least one edge."""
    while True:
        upper = (torch.rand(k, k, generator=generator) < p).triu(1)
        if upper.any():
            return (upper | upper.t()).float()


@ATTACKS.register("sub_ba")
class SubBA(Attack):
    name = "sub_ba"
    # 2: the adaptive variant (α > 0) penalises logits and embeddings over a poisoned-graph buffer
    version: ClassVar[int] = 2
    param_defaults: ClassVar[dict[str, Any]] = {"density": 0.8}

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        super().validate_params(params)
        density = params.get("density", 0.8)
        if not 0.0 < density <= 1.0:
            raise ConfigError("attack.params.density", density, "a number in (0, 1]")

    def prepare(self, ctx: AttackContext | None = None) -> None:
        self.adj = erdos_renyi_adjacency(self.trigger_nodes, float(self.params["density"]), self.generator)

    def positions(self, batch: Batch) -> tuple[Tensor, Tensor]:
        return random_positions(batch, self.trigger_nodes, self.generator)

    def trigger(self, batch: Batch, positions: Tensor, mask: Tensor) -> Trigger:
        return Trigger(self.adj)

    def state_dict(self) -> dict[str, Any]:
        return {"adj": self.adj}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.adj = state["adj"]
