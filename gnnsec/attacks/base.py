"""The attack interface shared by every backdoor attack on graph classification (GCleaner section 3, 5.1).

An attack (1) selects the victims: ``round(φ·|train|)`` training graphs whose label is not the target, (2)
builds its trigger, (3) injects it into the victims and relabels them to the target, and (4) trains the
backdoored model (plain cross-entropy, or ``L_atk − α·L_pq`` for the adaptive attack of Eq. 16).

Injection is vectorised over a whole ``Batch``: an attack says *where* the trigger goes (``positions``) and
*what* it is (``trigger``: adjacency and optionally features of the k trigger nodes), and
:func:`gnnsec.attacks.inject.replace_subgraph` rewrites ``edge_index`` with tensor ops.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from gnnsec.attacks.inject import can_carry
from gnnsec.config import AttackConfig, TrainConfig
from gnnsec.data.features import Featurizer
from gnnsec.errors import ConfigError
from gnnsec.train import fit, make_loader, select_device


@dataclass
class AttackContext:
    """What an attacker has: the training graphs, how nodes are featurized, and the model recipe."""

    train_graphs: list[Data]
    featurizer: Featurizer
    num_classes: int
    avg_nodes: float
    model_factory: Any  # () -> GraphClassifier
    train_cfg: TrainConfig
    clean_model: nn.Module | None = None  # a clean pretrained model (Exp-BA, Motif-BA explain with it)


@dataclass
class Trigger:
    """Trigger for one batch: ``adj`` [B, k, k] (or [k, k], shared) and optional node features [B, k, d]."""

    adj: Tensor
    features: Tensor | None = None


class Attack(ABC):
    name: ClassVar[str]
    version: ClassVar[int] = 1  # goes into cache keys: bump when the attack's behaviour changes
    param_defaults: ClassVar[dict[str, Any]] = {}
    uses_clean_model: ClassVar[bool] = False  # explains with AttackContext.clean_model (Exp-BA, Motif-BA)

    def __init__(self, cfg: AttackConfig, featurizer: Featurizer, num_classes: int, avg_nodes: float) -> None:
        self.cfg = cfg
        self.featurizer = featurizer
        self.num_classes = num_classes
        self.avg_nodes = avg_nodes
        self.params = {**self.param_defaults, **cfg.params}
        self.generator = torch.Generator().manual_seed(cfg.seed)

    def reseed(self, salt: int) -> None:
        """Restart the random stream (trigger positions) so injection is reproducible per purpose."""
        self.generator = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + salt)

    # ---- configuration -----------------------------------------------------------------------------
    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        for key, value in params.items():
            if key not in cls.param_defaults:
                raise ConfigError(
                    f"attack.params.{key}", value, sorted(cls.param_defaults) or "no parameters"
                )
            default = cls.param_defaults[key]
            numeric_default = isinstance(default, int | float) and not isinstance(default, bool)
            if numeric_default and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise ConfigError(f"attack.params.{key}", value, f"a number like {default}")
        guard = cls.no_op_guard
        if guard is not None:
            count = params.get(guard, cls.param_defaults[guard])
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise ConfigError(f"attack.params.{guard}", count, "an integer >= 0")

    @property
    def trigger_nodes(self) -> int:
        """k = max(2, round(t · average node count)) (GCleaner 5.1)."""
        return max(2, int(round(self.cfg.trigger_size * self.avg_nodes)))

    # ---- the trigger -----------------------------------------------------------------------------------
    @abstractmethod
    def prepare(self, ctx: AttackContext) -> None:
        """Build the trigger (and anything it needs) from what the attacker has."""

    @abstractmethod
    def positions(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Local node indices [B, k] where the trigger goes, and a validity mask [B, k]."""

    @abstractmethod
    def trigger(self, batch: Batch, positions: Tensor, mask: Tensor) -> Trigger:
        """The trigger's adjacency (and features) for each graph of ``batch``."""

    def inject_batch(self, batch: Batch) -> tuple[Batch, Tensor]:
        """The batch with the trigger injected, and the node flag of the trigger's nodes."""
        from gnnsec.attacks.inject import replace_subgraph, trigger_nodes

        with torch.no_grad():
            pos, mask = self.positions(batch)
            trig = self.trigger(batch, pos, mask)
            injected = replace_subgraph(batch, pos, mask, trig.adj, trig.features, self.featurizer)
        return injected, trigger_nodes(batch, pos, mask)[1]

    def inject(self, graphs: Sequence[Data], batch_size: int = 512) -> list[Data]:
        """The same graphs with the trigger injected (labels untouched)."""
        return self.inject_with_masks(graphs, batch_size)[0]

    def inject_with_masks(
        self, graphs: Sequence[Data], batch_size: int = 512
    ) -> tuple[list[Data], list[Tensor]]:
        """:meth:`inject` plus, per graph, the boolean mask of its trigger nodes (for the evaluation's
        attribution metrics, ``gnnsec.verify.backdoor``)."""
        out: list[Data] = []
        masks: list[Tensor] = []
        for batch in make_loader(graphs, batch_size):
            injected, in_trigger = self.inject_batch(batch)
            out.extend(injected.to_data_list())
            ptr = batch.ptr.tolist()
            masks.extend(in_trigger[ptr[i] : ptr[i + 1]].cpu() for i in range(batch.num_graphs))
        return out, masks

    # ---- poisoning and training --------------------------------------------------------------------
    # The setting that keeps a fixed trigger (``self.adj``) off placements where it changes nothing; 0 turns
    # that off (the plain placement). None: the attack has no such guard (e.g. GTA's generated triggers).
    no_op_guard: ClassVar[str | None] = None

    def eligible(self, graphs: Sequence[Data]) -> np.ndarray:
        """Which graphs can carry the trigger (bool per graph): with a no-op guard, those where injecting the
        fixed trigger changes something (:func:`~gnnsec.attacks.inject.can_carry`); otherwise all of them."""
        if self.no_op_guard is None or int(self.params[self.no_op_guard]) == 0:
            return np.ones(len(graphs), dtype=bool)
        return can_carry(graphs, self.adj)

    def select_victims(self, graphs: Sequence[Data]) -> np.ndarray:
        """``round(φ·|train|)`` indices of training graphs whose label is not the target and that can carry
        the trigger (:meth:`eligible`), drawn at random (seeded)."""
        ok = self.eligible(graphs)
        candidates = np.array(
            [i for i, g in enumerate(graphs) if int(g.y) != self.cfg.target_label and ok[i]], dtype=np.int64
        )
        count = int(round(self.cfg.injection_ratio * len(graphs)))
        if count > len(candidates) or count < 1:
            raise ConfigError(
                "attack.injection_ratio",
                self.cfg.injection_ratio,
                f"a ratio giving 1..{len(candidates)} victims out of {len(graphs)} graphs",
            )
        rng = np.random.default_rng(self.cfg.seed)
        return np.sort(rng.choice(candidates, size=count, replace=False))

    def poison(self, graphs: Sequence[Data], victims: np.ndarray) -> list[Data]:
        """The training set with the victims triggered and relabelled to the target."""
        return self.relabel(graphs, victims, self.inject([graphs[int(i)] for i in victims]))

    def relabel(self, graphs: Sequence[Data], victims: np.ndarray, triggered: Sequence[Data]) -> list[Data]:
        """``graphs`` with each victim replaced by its triggered copy, labelled as the target."""
        poisoned = list(graphs)
        for i, g in zip(victims, triggered):
            g = g.clone()
            g.y = torch.tensor([self.cfg.target_label])
            poisoned[int(i)] = g
        return poisoned

    def train_backdoored(
        self, model: nn.Module, poisoned: list[Data], ctx: AttackContext, victims: np.ndarray
    ) -> list[dict[str, float]]:
        """Train on the poisoned set; with α > 0 minimise ``L_atk − α·L_pq`` (Eq. 16)."""
        alpha = self.cfg.adaptive_alpha
        if alpha <= 0:
            return fit(model, poisoned, ctx.train_cfg, desc=f"backdoor/{self.name}")
        from gnnsec.attacks.adaptive import adaptive_loss

        loss_fn = adaptive_loss(alpha, [poisoned[int(i)] for i in victims], seed=self.cfg.seed)
        return fit(model, poisoned, ctx.train_cfg, loss_fn=loss_fn, desc=f"adaptive/{self.name}")

    def final_training_set(self, ctx: AttackContext, victims: np.ndarray, poisoned: list[Data]) -> list[Data]:
        """The poisoned training set as it stood at the end of training (what a training-time defense sees).

        The same as ``poisoned`` unless the attack changes its triggers while training (GTA).
        """
        del ctx, victims
        return poisoned

    # ---- persistence of the trigger -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Tensors (and plain values) that rebuild the trigger; saved in the artifact cache."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state

    def device(self) -> torch.device:
        return select_device("auto")


def random_positions(batch: Batch, k: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """k distinct random nodes per graph (all of them when a graph has fewer), vectorised."""
    counts = torch.diff(batch.ptr).cpu()
    scores = torch.rand(int(counts.sum()), generator=generator)
    return top_k_per_graph(scores, batch, k)


def top_k_per_graph(scores: Tensor, batch: Batch, k: int, largest: bool = True) -> tuple[Tensor, Tensor]:
    """Local indices of the k highest (or lowest) scoring nodes of each graph, padded; and the mask."""
    from torch_geometric.utils import to_dense_batch

    s = scores.detach().float().cpu()
    fill = -math.inf if largest else math.inf
    dense, valid = to_dense_batch(s, batch.batch.cpu(), fill_value=fill)
    if dense.size(1) < k:
        pad = torch.full((dense.size(0), k - dense.size(1)), fill)
        dense = torch.cat([dense, pad], 1)
        valid = torch.cat([valid, torch.zeros(valid.size(0), k - valid.size(1), dtype=torch.bool)], 1)
    order = dense.argsort(dim=1, descending=largest, stable=True)[:, :k]
    mask = valid.gather(1, order)
    return order, mask
