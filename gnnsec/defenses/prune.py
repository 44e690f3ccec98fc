"""Prune: drop edges whose endpoints are dissimilar, in training graphs and at inference (GCleaner 5.1
"Baseline", 5.2.1: "identifies nodes with significantly low cosine similarity to the features of their
connected nodes"; the feature-similarity pruning of GTA, Xi et al. 2021, section 6, after Wu et al. 2019).

Which vectors are compared (``similarity``):
- ``native``: the nodes' own input features (one-hot atom types on AIDS in native mode).
- ``embedding``: the first message-passing layer's node activations. In degree-feature mode (our default)
  the inputs are one-hot degrees, whose cosine is 0 or 1 (same degree or not), which says nothing about
  the nodes; the first layer mixes each node's degree with its neighbours' and gives a graded similarity.
  For the training graphs the activations come from a reference model trained ``reference_epochs`` on the
  unpruned training set; at inference, from the deployed model itself on the unpruned input.
- ``auto`` (default): ``native`` in native-feature mode, ``embedding`` otherwise.

An edge is kept when its endpoints' cosine similarity is at least ``threshold``; degree features are
recomputed after pruning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from gnnsec.data.features import Featurizer
from gnnsec.defenses.graph_ops import edge_cosine, refeaturize, split_edges
from gnnsec.defenses.kinds import InferenceWrapper, TrainingDefense, TrainingOutcome, TrainingRecipe
from gnnsec.defenses.registry import DEFENSES
from gnnsec.errors import ConfigError
from gnnsec.models.graph import ModelOutput
from gnnsec.train import fit, make_loader


def similarity_source(setting: str, featurizer: Featurizer) -> str:
    if setting == "auto":
        return "native" if featurizer.mode == "native" else "embedding"
    return setting


@torch.no_grad()
def keep_mask(
    x: Tensor, edge_index: Tensor, batch: Tensor, threshold: float, source: str, model: nn.Module | None
) -> Tensor:
    """True for edges whose endpoints' cosine similarity (native features or layer-1 activations) ≥ threshold."""
    if source == "native":
        h = x
    else:
        assert model is not None
        was = model.training
        model.eval()
        h = model.forward_full(x, edge_index, batch).node_activations[0]
        model.train(was)
    return edge_cosine(h, edge_index) >= threshold


class PrunedClassifier(InferenceWrapper):
    """Prunes dissimilar edges of every input graph, then classifies it (deterministic)."""

    def __init__(
        self, inner: nn.Module, featurizer: Featurizer, seed: int, threshold: float, source: str
    ) -> None:
        super().__init__(inner, featurizer, seed)
        self.threshold, self.source = threshold, source

    def prune(self, x: Tensor, edge_index: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        keep = keep_mask(x, edge_index, batch, self.threshold, self.source, self.inner)
        ei = edge_index[:, keep]
        return refeaturize(x, ei, self.featurizer), ei

    @torch.no_grad()
    def diagnostics(self, graphs: Sequence[Data]) -> dict[str, float]:
        """Fraction of the graphs' edges this wrapper prunes."""
        removed = total = 0
        device = next(self.parameters()).device
        for b in make_loader(graphs, 256):
            b = b.to(device)
            keep = keep_mask(b.x, b.edge_index, b.batch, self.threshold, self.source, self.inner)
            removed, total = removed + int((~keep).sum()), total + keep.numel()
        return {"edges_pruned": removed / max(total, 1)} if total else {}

    def forward_full(
        self, x: Tensor, edge_index: Tensor, batch: Tensor | None = None, edge_weight: Tensor | None = None
    ) -> ModelOutput:
        del edge_weight
        if batch is None:
            batch = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
        xp, ep = self.prune(x, edge_index, batch)
        return self.inner.forward_full(xp, ep, batch)


@DEFENSES.register("prune")
class Prune(TrainingDefense):
    name = "prune"
    version: ClassVar[int] = 1
    param_defaults: ClassVar[dict[str, Any]] = {
        "threshold": 0.2,
        "similarity": "auto",
        "reference_epochs": 20,
    }
    param_choices: ClassVar[dict[str, tuple[Any, ...]]] = {"similarity": ("auto", "native", "embedding")}

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        super().validate_params(params)
        if "threshold" in params and not -1.0 <= float(params["threshold"]) <= 1.0:
            raise ConfigError("defense.params.threshold", params["threshold"], "a cosine in [-1, 1]")
        if "reference_epochs" in params and int(params["reference_epochs"]) < 1:
            raise ConfigError(
                "defense.params.reference_epochs", params["reference_epochs"], "a positive count"
            )

    def prune_graphs(
        self, graphs: list[Data], featurizer: Featurizer, reference: nn.Module | None
    ) -> tuple[list[Data], float]:
        """The graphs with dissimilar edges removed, and the fraction of edges removed."""
        source = similarity_source(str(self.params["similarity"]), featurizer)
        thr = float(self.params["threshold"])
        out: list[Data] = []
        removed = total = 0
        device = next(reference.parameters()).device if reference is not None else torch.device("cpu")
        for b in make_loader(graphs, 256):
            b = b.to(device)
            keep = keep_mask(b.x, b.edge_index, b.batch, thr, source, reference)
            removed += int((~keep).sum())
            total += keep.numel()
            out.extend(g.cpu() for g in split_edges(b, keep, featurizer))
        return out, removed / max(total, 1)

    @classmethod
    def training_epochs(cls, params: Mapping[str, Any], epochs: int) -> float:
        """The pruned model's training, plus the reference model's unless native features are compared."""
        return float(epochs) + (0.0 if params["similarity"] == "native" else int(params["reference_epochs"]))

    def train(self, graphs: list[Data], recipe: TrainingRecipe, seed: int) -> TrainingOutcome:
        source = similarity_source(str(self.params["similarity"]), recipe.featurizer)
        if source == "native" and recipe.featurizer.mode != "native":
            raise ConfigError(
                "defense.params.similarity", "native", "embedding or auto (degree-feature mode)"
            )
        reference = None
        if source == "embedding":
            reference = recipe.new_model(seed)
            fit(
                reference,
                graphs,
                recipe.train_cfg(seed, epochs=int(self.params["reference_epochs"])),
                desc="prune/ref",
            )
        pruned, frac = self.prune_graphs(graphs, recipe.featurizer, reference)
        model = recipe.new_model(seed)
        history = fit(model, pruned, recipe.train_cfg(seed), desc="prune")
        return TrainingOutcome(model, None, {"train_edges_pruned": frac}, history)

    def deploy(self, model: nn.Module, recipe: TrainingRecipe, seed: int) -> nn.Module:
        source = similarity_source(str(self.params["similarity"]), recipe.featurizer)
        return PrunedClassifier(model, recipe.featurizer, seed, float(self.params["threshold"]), source)
