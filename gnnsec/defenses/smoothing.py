"""Randomized Smoothing by subsampling (Zhang, Jia, Wang & Gong, "Backdoor Attacks to Graph Neural Networks",
SACMAT 2021, section 6; GCleaner 5.1 "Baseline" and Table 3).

Training: every mini-batch is replaced by a random subgraph of each of its graphs (each node kept with
probability β, or each undirected edge in ``mode="edge"``), degree features recomputed after sampling.
Inference: the prediction is the majority vote of the classifier over M independently subsampled copies
(:class:`SmoothedClassifier`); a graph whose top vote is tied counts as an abstention (the certified-style
"abstain" of smoothed classifiers), reported as ``abstain_rate``. Sampling is seeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from gnnsec.data.features import Featurizer
from gnnsec.defenses.graph_ops import replicate, subsample
from gnnsec.defenses.kinds import InferenceWrapper, TrainingDefense, TrainingOutcome, TrainingRecipe
from gnnsec.defenses.registry import DEFENSES
from gnnsec.models.graph import ModelOutput
from gnnsec.train import fit, make_loader


class SmoothedClassifier(InferenceWrapper):
    """Majority vote over ``samples`` random subgraphs of each input graph (seeded per call)."""

    def __init__(
        self, inner: nn.Module, featurizer: Featurizer, seed: int, beta: float, mode: str, samples: int
    ) -> None:
        super().__init__(inner, featurizer, seed)
        self.beta, self.mode, self.samples = beta, mode, samples

    def votes(self, x: Tensor, edge_index: Tensor, batch: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Vote counts [B, C] and the M sampled copies' embeddings [M, B, hidden]."""
        if batch is None:
            batch = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
        b = int(batch.max()) + 1 if batch.numel() else 0
        m = self.samples
        xm, eim, bm = replicate(x, edge_index, batch, b, m)
        xs, eis, bs = subsample(xm, eim, bm, m * b, self.beta, self.mode, self.featurizer, self.generator())
        out = self.inner.forward_full(xs, eis, bs)
        preds = out.logits.argmax(-1).view(m, b)
        counts = nn.functional.one_hot(preds, out.logits.size(-1)).sum(0).float()
        return counts, out.embedding.view(m, b, -1)

    def forward_full(
        self, x: Tensor, edge_index: Tensor, batch: Tensor | None = None, edge_weight: Tensor | None = None
    ) -> ModelOutput:
        """Logits: the vote fractions (argmax = majority, ties to the lower class); embedding: the mean
        embedding of the M samples; node activations: the classifier's on the unsampled input."""
        del edge_weight  # subsampling drops edges; weights do not survive it
        counts, embs = self.votes(x, edge_index, batch)
        acts = self.inner.forward_full(x, edge_index, batch).node_activations
        return ModelOutput(counts / self.samples, embs.mean(0), acts)

    @torch.no_grad()
    def diagnostics(self, graphs: Sequence[Data]) -> dict[str, float]:
        if not len(graphs):
            return {}
        device = next(self.parameters()).device
        tied = 0
        for b in make_loader(graphs, 128):
            b = b.to(device)
            counts, _ = self.votes(b.x, b.edge_index, b.batch)
            top = counts.topk(min(2, counts.size(1)), dim=1).values
            tied += int((top[:, 0] == top[:, -1]).sum()) if top.size(1) > 1 else 0
        return {"abstain_rate": tied / len(graphs)}


def subsampled_loss(beta: float, mode: str, featurizer: Featurizer) -> Any:
    """Cross-entropy on one random subgraph of each graph of the batch (torch's seeded global stream)."""

    def loss(model: nn.Module, batch: Batch) -> Tensor:
        x, ei, b = subsample(batch.x, batch.edge_index, batch.batch, batch.num_graphs, beta, mode, featurizer)
        return nn.functional.cross_entropy(model(x, ei, b), batch.y)

    return loss


@DEFENSES.register("smoothing")
class RandomizedSmoothing(TrainingDefense):
    name = "smoothing"
    version: ClassVar[int] = 1
    param_defaults: ClassVar[dict[str, Any]] = {"beta": 0.5, "mode": "node", "samples": 20}
    param_choices: ClassVar[dict[str, tuple[Any, ...]]] = {"mode": ("node", "edge")}

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        super().validate_params(params)
        from gnnsec.errors import ConfigError

        if "beta" in params and not 0.0 < float(params["beta"]) <= 1.0:
            raise ConfigError("defense.params.beta", params["beta"], "a keep ratio in (0, 1]")
        if "samples" in params and int(params["samples"]) < 1:
            raise ConfigError("defense.params.samples", params["samples"], "a positive number of samples")

    def train(self, graphs: list[Data], recipe: TrainingRecipe, seed: int) -> TrainingOutcome:
        model = recipe.new_model(seed)
        loss = subsampled_loss(float(self.params["beta"]), str(self.params["mode"]), recipe.featurizer)
        history = fit(model, graphs, recipe.train_cfg(seed), loss_fn=loss, desc="smoothing")
        return TrainingOutcome(model, None, {}, history)

    def deploy(self, model: nn.Module, recipe: TrainingRecipe, seed: int) -> nn.Module:
        p = self.params
        return SmoothedClassifier(
            model, recipe.featurizer, seed, float(p["beta"]), str(p["mode"]), int(p["samples"])
        )
