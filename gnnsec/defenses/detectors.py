"""Explanation-based backdoor detectors ED and XGBD, used as GCleaner Table 7 / Appendix A uses them: detect
on the whole training set, drop the flagged graphs, retrain the model on the rest.

Both train a helper model on the (poisoned) training set, explain every training graph with GNNExplainer
(node masks, :func:`gnnsec.explain.node_importance`) and take the explanatory subgraph S = the
``top_ratio`` most important nodes of each graph (at least one).

- **ED** (Jiang & Li, arXiv 2209.02902): backdoor graphs differ from clean ones in the explanation's
  fidelity metrics. For the helper's predicted class ŷ: fidelity+ = p(ŷ|G) − p(ŷ|G∖S) (removing S),
  fidelity− = p(ŷ|G) − p(ŷ|S) (keeping only S). A trigger is a small subgraph that alone decides ŷ, so a
  backdoored graph has high fidelity+ and low fidelity−; the score is ``fidelity+ − fidelity−`` and
  graphs above the upper Tukey fence (Q3 + k·IQR) of the training scores are flagged.
- **XGBD** (Guan, Du & Liu, arXiv 2308.04406): the helper is trained only ``helper_epochs`` (an early
  model, when backdoor graphs are already fit and clean ones not yet), and the explanation-guided feature is
  the helper's loss on the explanatory subgraph alone w.r.t. the graph's label: the trigger alone yields the
  target label with very low loss. Graphs below the lower Tukey fence (Q1 − k·IQR) of the log-losses are
  flagged.

The flagged indices go back as ``flagged``; the evaluation reports detection precision/recall/F1.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.utils import scatter, subgraph

from gnnsec.defenses.graph_ops import refeaturize
from gnnsec.defenses.kinds import TrainingDefense, TrainingOutcome, TrainingRecipe
from gnnsec.defenses.registry import DEFENSES
from gnnsec.errors import ConfigError
from gnnsec.explain import node_importance
from gnnsec.train import fit, make_loader

log = logging.getLogger(__name__)


def top_nodes(scores: Tensor, batch: Tensor, num_graphs: int, ratio: float) -> Tensor:
    """Mask of each graph's ``ceil(ratio·n)`` highest-scoring nodes (vectorised rank within graph)."""
    n = scatter(torch.ones_like(batch), batch, dim=0, dim_size=num_graphs, reduce="sum")
    k = torch.clamp(torch.ceil(ratio * n.float()).long(), min=1)
    by_score = torch.argsort(scores.detach(), descending=True, stable=True)
    order = by_score[torch.argsort(batch[by_score], stable=True)]  # by graph, then by score (descending)
    ptr = torch.cumsum(torch.cat([n.new_zeros(1), n[:-1]]), 0)
    sorted_batch = batch[order]
    rank = torch.arange(batch.numel(), device=batch.device) - ptr[sorted_batch]
    mask = torch.zeros_like(batch, dtype=torch.bool)
    mask[order] = rank < k[sorted_batch]
    return mask


@torch.no_grad()
def _class_prob(model: nn.Module, x: Tensor, ei: Tensor, b: Tensor, num_graphs: int, cls: Tensor) -> Tensor:
    logits = model(x, ei, b)
    probs = torch.softmax(logits, -1)
    full = torch.zeros(num_graphs, probs.size(1), device=probs.device)
    full[torch.unique(b)] = probs  # graphs left without nodes keep probability 0
    return full.gather(1, cls.view(-1, 1)).squeeze(1)


def _restrict(x: Tensor, ei: Tensor, b: Tensor, keep: Tensor, featurizer) -> tuple[Tensor, Tensor, Tensor]:  # noqa: ANN001
    sub_ei, _ = subgraph(keep, ei, relabel_nodes=True, num_nodes=x.size(0))
    return refeaturize(x[keep], sub_ei, featurizer), sub_ei, b[keep]


class ExplanationDetector(TrainingDefense):
    """Helper model → GNNExplainer on every training graph → per-graph score → flag → retrain on the rest."""

    param_defaults: ClassVar[dict[str, Any]] = {
        "top_ratio": 0.2,
        "explain_epochs": 100,
        "fence": 1.5,
        "helper_epochs": 0,  # 0: the recipe's full epoch count
    }

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        super().validate_params(params)
        if "top_ratio" in params and not 0.0 < float(params["top_ratio"]) < 1.0:
            raise ConfigError("defense.params.top_ratio", params["top_ratio"], "a ratio in (0, 1)")

    high_is_suspicious: ClassVar[bool] = True

    def scores(self, helper: nn.Module, graphs: list[Data], recipe: TrainingRecipe, seed: int) -> Tensor:
        """Per-graph score: explain each batch, take S (the top ``top_ratio`` nodes), :meth:`batch_score` it."""
        ratio = float(self.params["top_ratio"])
        device = next(helper.parameters()).device
        out = []
        for i, b in enumerate(make_loader(graphs, 128)):
            b = b.to(device)
            s_mask = top_nodes(self.explain(helper, b, seed * 7919 + i), b.batch, b.num_graphs, ratio)
            out.append(self.batch_score(helper, b, s_mask, recipe).cpu())
        return torch.cat(out)

    def batch_score(self, helper: nn.Module, b, s_mask: Tensor, recipe: TrainingRecipe) -> Tensor:  # noqa: ANN001
        """The detector's statistic for each graph of batch ``b`` given its explanatory nodes ``s_mask``."""
        raise NotImplementedError

    def flag(self, scores: Tensor) -> np.ndarray:
        raise NotImplementedError

    def explain(self, helper: nn.Module, batch, seed: int) -> Tensor:  # noqa: ANN001
        gen = torch.Generator().manual_seed(seed)
        return node_importance(
            "gnnexplainer", helper, batch, epochs=int(self.params["explain_epochs"]), chunk=128, generator=gen
        )

    #: cost of one GNNExplainer epoch over every training graph, in training epochs (only the masks are
    #: optimised, in chunks of 128 graphs): about 0.3 in our AIDS runs (ED ~2.2x, XGBD ~1.5x ABL's time)
    explain_epoch_cost: ClassVar[float] = 0.3

    @classmethod
    def training_epochs(cls, params: Mapping[str, Any], epochs: int) -> float:
        """Helper training + explaining every training graph + retraining without the flagged graphs."""
        helper = int(params["helper_epochs"]) or epochs
        return float(helper + epochs) + cls.explain_epoch_cost * int(params["explain_epochs"])

    def train(self, graphs: list[Data], recipe: TrainingRecipe, seed: int) -> TrainingOutcome:
        helper = recipe.new_model(seed)
        h_epochs = int(self.params["helper_epochs"]) or int(recipe.train.epochs or 1)
        helper_hist = fit(helper, graphs, recipe.train_cfg(seed, epochs=h_epochs), desc=f"{self.name}/helper")
        helper.eval()
        s = self.scores(helper, graphs, recipe, seed)
        flagged = self.flag(s)
        suspicion = s if self.high_is_suspicious else -s
        keep = np.ones(len(graphs), dtype=bool)
        keep[flagged] = False
        log.info("%s: flagged %d of %d training graphs", self.name, len(flagged), len(graphs))
        model = recipe.new_model(seed)
        history = fit(
            model, [g for g, k in zip(graphs, keep) if k], recipe.train_cfg(seed), desc=f"{self.name}/retrain"
        )
        metrics = {
            "flagged": float(len(flagged)),
            "score_median": float(s.median()),
            "helper_final_loss": helper_hist[-1]["loss"] if helper_hist else float("nan"),
        }
        return TrainingOutcome(model, flagged.tolist(), metrics, history, suspicion.tolist())


def tukey_upper(s: Tensor, k: float) -> np.ndarray:
    q1, q3 = torch.quantile(s, 0.25), torch.quantile(s, 0.75)
    return torch.nonzero(s > q3 + k * (q3 - q1)).view(-1).numpy()


@DEFENSES.register("ed")
class ED(ExplanationDetector):
    name = "ed"
    version: ClassVar[int] = 1

    def batch_score(self, helper: nn.Module, b, s_mask: Tensor, recipe: TrainingRecipe) -> Tensor:  # noqa: ANN001
        with torch.no_grad():
            pred = helper(b.x, b.edge_index, b.batch).argmax(-1)
        p_full = _class_prob(helper, b.x, b.edge_index, b.batch, b.num_graphs, pred)
        p_without = _class_prob(
            helper, *_restrict(b.x, b.edge_index, b.batch, ~s_mask, recipe.featurizer), b.num_graphs, pred
        )
        p_only = _class_prob(
            helper, *_restrict(b.x, b.edge_index, b.batch, s_mask, recipe.featurizer), b.num_graphs, pred
        )
        return (p_full - p_without) - (p_full - p_only)  # fidelity+ - fidelity-

    def flag(self, scores: Tensor) -> np.ndarray:
        return tukey_upper(scores, float(self.params["fence"]))


@DEFENSES.register("xgbd")
class XGBD(ExplanationDetector):
    name = "xgbd"
    version: ClassVar[int] = 1
    param_defaults: ClassVar[dict[str, Any]] = {**ExplanationDetector.param_defaults, "helper_epochs": 20}
    high_is_suspicious: ClassVar[bool] = False  # a low explanatory-subgraph loss is suspicious

    def scores(self, helper: nn.Module, graphs: list[Data], recipe: TrainingRecipe, seed: int) -> Tensor:
        return torch.log(super().scores(helper, graphs, recipe, seed).clamp(min=1e-12))  # log-losses

    def batch_score(self, helper: nn.Module, b, s_mask: Tensor, recipe: TrainingRecipe) -> Tensor:  # noqa: ANN001
        p_label = _class_prob(
            helper, *_restrict(b.x, b.edge_index, b.batch, s_mask, recipe.featurizer), b.num_graphs, b.y
        )
        return -torch.log(p_label.clamp(min=1e-12))

    def flag(self, scores: Tensor) -> np.ndarray:
        return tukey_upper(-scores, float(self.params["fence"]))
