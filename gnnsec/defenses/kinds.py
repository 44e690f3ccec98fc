"""The two defense kinds besides post-training :class:`~gnnsec.defenses.base.Defense`.

**Training-time** (:class:`TrainingDefense`: ABL, Prune, Randomized Smoothing, and the detectors ED and XGBD
as GCleaner Table 7 uses them): the defender trains the model itself on the poisoned training set. It
receives the training graphs as a plain list (``x``, ``edge_index``, ``y`` and native features only: see
:func:`plain_graphs`), the :class:`TrainingRecipe` (how to build and train the backbone) and a seed;
nothing marks which graphs are poisoned, which label is the target, or what the trigger is. The pipeline
composes it in place of the victim's own training and caches its model under a key that includes the
defense, its version and its settings.

**Inference-time** (:class:`InferenceWrapper`: Prune's test-time pruning, Smoothing's majority vote): a
module wrapping a trained classifier that supports everything the evaluation calls (``forward``,
``forward_full`` with the embedding, ``classify_embedding``), seeded so that the same input gives the same
output. A training-time defense deploys its model through :meth:`TrainingDefense.deploy`, which may wrap.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from gnnsec.config import TrainConfig
from gnnsec.data.features import Featurizer
from gnnsec.defenses.base import DefenseMethod
from gnnsec.models.graph import LogitsModule

#: the only attributes a training-time defense sees on a graph
PLAIN_KEYS = ("x", "edge_index", "y", "x_native")


def plain_graphs(graphs: Sequence[Data]) -> list[Data]:
    """Copies of ``graphs`` with only :data:`PLAIN_KEYS` (drops any poison flag or bookkeeping)."""
    out = []
    for g in graphs:
        kept = {k: g[k] for k in PLAIN_KEYS if k in g}
        out.append(Data(**kept, num_nodes=g.num_nodes))
    return out


@dataclass(frozen=True)
class TrainingRecipe:
    """How the victim would train: backbone factory, training settings, featurizer, number of classes."""

    model_factory: Callable[[int], nn.Module]  # seed -> a freshly initialised backbone
    train: TrainConfig
    featurizer: Featurizer
    num_classes: int

    def new_model(self, seed: int) -> nn.Module:
        return self.model_factory(seed)

    def train_cfg(self, seed: int, **changes: object) -> TrainConfig:
        """The recipe's training settings with ``seed`` (and any other ``changes``)."""
        return dataclasses.replace(self.train, seed=seed, **changes)


@dataclass
class TrainingOutcome:
    """A training-time defense's trained model (unwrapped) and what it measured.

    ``flagged``: indices (into the graphs it was given) it isolated or removed as suspicious, or None for a
    defense that flags nothing; the pipeline, which alone knows the poisoned set, turns them into detection
    precision / recall / F1. ``scores`` (optional): the per-graph suspicion score the flags came from
    (higher = more suspicious), for the evaluation's detection AUROC.
    """

    model: nn.Module
    flagged: list[int] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    scores: list[float] | None = None


class TrainingDefense(DefenseMethod, ABC):
    """A defense that trains the model itself on the (possibly poisoned) training set."""

    @abstractmethod
    def train(self, graphs: list[Data], recipe: TrainingRecipe, seed: int) -> TrainingOutcome:
        """Train and return a model from ``graphs`` alone (no poison flags, target or trigger)."""

    @classmethod
    def training_epochs(cls, params: Mapping[str, Any], epochs: int) -> float:
        """Rough cost of :meth:`train` in epochs over the whole training set, for ``--dry-run`` estimates
        (``params``: the defense's settings with defaults filled; ``epochs``: the recipe's). Default: one
        training run; a defense that trains helpers or explains every graph declares more."""
        del params
        return float(epochs)

    def deploy(self, model: nn.Module, recipe: TrainingRecipe, seed: int) -> nn.Module:
        """The model as served at inference (identity, or an :class:`InferenceWrapper`)."""
        del recipe, seed
        return model


class InferenceWrapper(LogitsModule):
    """A trained classifier behind an input transformation or a vote, with the classifier's interface.

    Subclasses implement :meth:`forward_full`; randomness comes from a generator re-seeded with ``seed``
    at every call, so one input always gives one output.
    """

    def __init__(self, inner: nn.Module, featurizer: Featurizer, seed: int) -> None:
        super().__init__()
        self.inner = inner
        self.featurizer = featurizer
        self.seed = seed

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(int(self.seed))

    def classify_embedding(self, emb: Tensor) -> Tensor:
        return self.inner.classify_embedding(emb)

    def diagnostics(self, graphs: Sequence[Data]) -> dict[str, float]:
        """Wrapper-specific measurements on ``graphs`` (e.g. Smoothing's abstain rate); none by default."""
        del graphs
        return {}
