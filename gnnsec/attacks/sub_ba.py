"""Sub-BA (Zhang et al., "Backdoor attacks to graph neural networks", SACMAT 2021; GCleaner Appendix A).

The trigger is one Erdős–Rényi graph G(k, p) (p = ``density``, default 0.8) drawn once per seed; in every
poisoned or tested graph it replaces the edges among k nodes chosen uniformly at random.

Departure (issue 8 item 5, ``docs/attack_strength.md``): a draw of k nodes that *already* induce exactly the
trigger is redrawn (up to ``max_redraws`` times per graph; 0 restores the plain draw), so that injecting
always changes the graph. Without it, a 2-node trigger (an edge; Fingerprint, t = 20 % of 8.15 nodes) lands
on an existing edge in 31-34 % of the graphs: those poisoned graphs are unchanged clean graphs relabelled to
the target (label noise the model cannot fit) and those "triggered" test graphs carry no injected trigger.
The nodes stay uniformly random among the draws that change the graph. A graph where every draw induces the
trigger cannot carry it (Fingerprint: the 2-node graphs, 10 % of the non-target graphs, under an edge
trigger): it is not chosen as a poisoning victim (:meth:`eligible`); at test time it keeps its last draw
(unchanged), and ``benchmarks/attack_strength.py`` reports the ASR over the graphs injection changed.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor
from torch_geometric.data import Batch

from gnnsec.attacks.base import Attack, AttackContext, Trigger, random_positions
from gnnsec.attacks.inject import induces
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
    # 3: positions that already induce the trigger are redrawn (max_redraws)
    version: ClassVar[int] = 3
    no_op_guard: ClassVar[str | None] = "max_redraws"
    param_defaults: ClassVar[dict[str, Any]] = {"density": 0.8, "max_redraws": 20}

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        super().validate_params(params)
        density = params.get("density", 0.8)
        if not 0.0 < density <= 1.0:
            raise ConfigError("attack.params.density", density, "a number in (0, 1]")

    def prepare(self, ctx: AttackContext | None = None) -> None:
        self.adj = erdos_renyi_adjacency(self.trigger_nodes, float(self.params["density"]), self.generator)

    def positions(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """k uniformly random nodes per graph, redrawn where they already induce the trigger."""
        k = self.trigger_nodes
        pos, mask = random_positions(batch, k, self.generator)
        for _ in range(int(self.params["max_redraws"])):
            unchanged = self.induces_trigger(batch, pos, mask)
            if not bool(unchanged.any()):
                break
            new_pos, new_mask = random_positions(batch, k, self.generator)
            pos[unchanged], mask[unchanged] = new_pos[unchanged], new_mask[unchanged]
        return pos, mask

    def induces_trigger(self, batch: Batch, pos: Tensor, mask: Tensor) -> Tensor:
        """Per graph: do the nodes at ``pos`` already have exactly the trigger's edges among them?"""
        return induces(batch, pos, mask, self.adj)

    def trigger(self, batch: Batch, positions: Tensor, mask: Tensor) -> Trigger:
        return Trigger(self.adj)

    def state_dict(self) -> dict[str, Any]:
        return {"adj": self.adj}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.adj = state["adj"]
