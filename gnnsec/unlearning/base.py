"""The unlearner interface: a request (trained model, graph, forget set) in, an outcome out.

Every unlearner returns the unlearned model, the graph it now serves (a relabelled subgraph whose
``node_ids`` map back to the original ids; the forget nodes are absent when the method removes them) and
its wall time (``seconds``; work a method does once at training time, e.g. GraphEditor's Gram inverse, is
timed separately as ``prepare_seconds``).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.utils import k_hop_subgraph, subgraph

from gnnsec.config import TrainConfig
from gnnsec.errors import ConfigError


@dataclass
class UnlearnRequest:
    model: nn.Module  # the trained model (not modified by unlearners)
    graph: Data  # the original graph with train/val/test masks and node_ids
    forget: Tensor  # original ids of the nodes to forget
    new_model: Callable[[], nn.Module]  # a freshly initialised model of the same architecture
    train: TrainConfig  # the recipe the model was trained with
    num_classes: int


@dataclass
class UnlearnOutcome:
    model: nn.Module
    graph: Data
    seconds: float
    prepare_seconds: float = 0.0
    info: dict[str, float] = field(default_factory=dict)


def remove_nodes(graph: Data, forget: Tensor) -> Data:
    """The subgraph without ``forget`` (and their edges), relabelled; masks and ``node_ids`` follow."""
    keep = torch.ones(graph.num_nodes, dtype=torch.bool)
    keep[forget] = False
    edge_index, _ = subgraph(keep, graph.edge_index, relabel_nodes=True, num_nodes=graph.num_nodes)
    out = Data(x=graph.x[keep], edge_index=edge_index, y=graph.y[keep], num_nodes=int(keep.sum()))
    for key in ("train_mask", "val_mask", "test_mask", "node_ids"):
        out[key] = graph[key][keep]
    return out


def k_hop_mask(graph: Data, nodes: Tensor, k: int) -> Tensor:
    """Boolean mask of the nodes within ``k`` hops of ``nodes`` (including them)."""
    subset, _, _, _ = k_hop_subgraph(nodes, k, graph.edge_index, num_nodes=graph.num_nodes)
    mask = torch.zeros(graph.num_nodes, dtype=torch.bool)
    mask[subset] = True
    return mask


class Unlearner(ABC):
    """Base class; subclasses declare ``Params`` (a dataclass) and implement ``_unlearn``."""

    name: ClassVar[str] = ""

    @dataclass
    class Params:
        pass

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.validate_params(params or {})
        self.p = self.Params(**(params or {}))

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        names = {f.name: f for f in dataclasses.fields(cls.Params)}
        for key, value in params.items():
            if key not in names:
                raise ConfigError(f"unlearning.params.{key}", value, sorted(names) or "no parameters")
            default = names[key].default
            if isinstance(default, bool) != isinstance(value, bool) or (
                isinstance(default, int | float) and not isinstance(value, int | float)
            ):
                raise ConfigError(f"unlearning.params.{key}", value, f"a {type(default).__name__}")
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"unlearning.params.{key}", value, "a non-negative number")

    def prepare(self, req: UnlearnRequest) -> None:
        """Work done once at training time (not part of the unlearning time); none by default."""
        del req

    @abstractmethod
    def _unlearn(self, req: UnlearnRequest) -> tuple[nn.Module, Data, dict[str, float]]:
        """Return the unlearned model, the served graph and extra info."""

    def unlearn(self, req: UnlearnRequest) -> UnlearnOutcome:
        req = dataclasses.replace(req, model=copy.deepcopy(req.model).eval())
        t0 = time.perf_counter()
        self.prepare(req)
        t1 = time.perf_counter()
        model, graph, info = self._unlearn(req)
        t2 = time.perf_counter()
        return UnlearnOutcome(model.eval(), graph, t2 - t1, t1 - t0, info)
