"""Baseline defenses (ABL, Prune, Randomized Smoothing, ED, XGBD) and the three defense kinds.

On AIDS from the data mirror (a 600-graph slice of the training split, GIN of width 32, a few epochs):
the training-time interface cannot see poison flags, the target or the trigger; Prune removes an injected
edge between dissimilar nodes and keeps similar ones; Smoothing predicts the majority of its M samples,
reproducibly for a seed; ABL's isolated set and ED/XGBD's flagged sets are enriched in poisoned graphs
relative to the base rate on a strongly poisoned set; the cache key follows a training-time defense's
settings.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data

from gnnsec.attacks import ATTACKS, AttackContext
from gnnsec.cache import ArtifactCache
from gnnsec.config import AttackConfig, DataConfig, DefenseConfig, TrainConfig
from gnnsec.data.loading import GraphDataset, load_graph_dataset
from gnnsec.defenses import DEFENSES, TrainingDefense, TrainingOutcome, TrainingRecipe, plain_graphs
from gnnsec.defenses.kinds import PLAIN_KEYS
from gnnsec.defenses.prune import PrunedClassifier, keep_mask
from gnnsec.defenses.smoothing import SmoothedClassifier
from gnnsec.errors import ConfigError
from gnnsec.models import build_graph_model
from gnnsec.pipeline_defense import defense_spec, detection_metrics, run_training_time
from gnnsec.train import fit
from tests.conftest import require_dataset

N_TRAIN = 600


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@dataclass
class Poisoned:
    ds: GraphDataset
    graphs: list[Data]  # the poisoned training slice
    victims: np.ndarray
    recipe: TrainingRecipe

    @property
    def base_rate(self) -> float:
        return len(self.victims) / len(self.graphs)


def _recipe(ds: GraphDataset, epochs: int) -> TrainingRecipe:
    def factory(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return build_graph_model("GIN", ds.num_features, ds.num_classes, hidden=32)

    return TrainingRecipe(factory, TrainConfig(epochs=epochs, batch_size=64), ds.featurizer, ds.num_classes)


def _poison(feature_mode: str, ratio: float, trigger_size: float) -> Poisoned:
    ds = load_graph_dataset(DataConfig(dataset="AIDS", feature_mode=feature_mode))
    split = ds.split(DataConfig(dataset="AIDS", feature_mode=feature_mode))
    train = ds.subset(split.train)[:N_TRAIN]
    recipe = _recipe(ds, epochs=10)
    acfg = AttackConfig(name="sub_ba", injection_ratio=ratio, trigger_size=trigger_size, seed=0)
    attack = ATTACKS.get("sub_ba")(acfg, ds.featurizer, ds.num_classes, ds.avg_nodes)
    ctx = AttackContext(
        train, ds.featurizer, ds.num_classes, ds.avg_nodes, lambda: recipe.new_model(0), recipe.train
    )
    attack.prepare(ctx)
    victims = attack.select_victims(train)
    return Poisoned(ds, attack.poison(train, victims), victims, recipe)


@pytest.fixture(scope="module")
def strong(mirror) -> Poisoned:  # noqa: ANN001
    """15% of the slice (90 graphs) poisoned with a 30%-size Sub-BA trigger (degree features)."""
    require_dataset(mirror, "TUDataset", "AIDS")
    return _poison("degree", 0.15, 0.3)


@pytest.fixture(scope="module")
def aids_native(mirror) -> GraphDataset:  # noqa: ANN001
    require_dataset(mirror, "TUDataset", "AIDS")
    return load_graph_dataset(DataConfig(dataset="AIDS", feature_mode="native"))


# ---- the training-time interface is blind to the attack ------------------------------------------------
class Spy(TrainingDefense):
    name = "spy"

    def train(self, graphs: list[Data], recipe: TrainingRecipe, seed: int) -> TrainingOutcome:
        self.seen = graphs
        return TrainingOutcome(recipe.new_model(seed))


def test_training_time_interface_cannot_see_poison_target_or_trigger(strong: Poisoned, tmp_path) -> None:  # noqa: ANN001
    params = list(inspect.signature(TrainingDefense.train).parameters)
    assert params == ["self", "graphs", "recipe", "seed"]
    fields = {f.name for f in dataclasses.fields(TrainingRecipe)}
    assert fields == {"model_factory", "train", "featurizer", "num_classes"}
    assert not any(w in f for f in fields for w in ("poison", "victim", "target", "trigger", "attack"))
    # poison flags on the graphs (as the adaptive attack sets them) never reach the defense
    flagged = []
    for i, g in enumerate(strong.graphs):
        g = g.clone()
        g.poisoned = torch.tensor([bool(np.isin(i, strong.victims))])
        g.trigger_mask = torch.zeros(g.num_nodes, dtype=torch.bool)
        flagged.append(g)
    spy = Spy(DefenseConfig(name="finetune"))
    spec = {"test": "spy"}
    run_training_time(spy, flagged, strong.recipe, ArtifactCache(tmp_path), spec, torch.device("cpu"))
    assert len(spy.seen) == len(flagged)
    assert all(set(g.keys()) - {"num_nodes"} <= set(PLAIN_KEYS) for g in spy.seen)
    assert all(
        torch.equal(a.edge_index, b.edge_index) and int(a.y) == int(b.y) for a, b in zip(spy.seen, flagged)
    )


def test_every_baseline_is_registered_with_a_version_and_validates_its_settings() -> None:
    for name in ("abl", "prune", "smoothing", "ed", "xgbd"):
        cls = DEFENSES.get(name)
        assert issubclass(cls, TrainingDefense) and isinstance(cls.version, int)
    with pytest.raises(ConfigError, match="defense.params.beta"):
        DefenseConfig(name="smoothing", params={"beta": 1.5})
    with pytest.raises(ConfigError, match="defense.params.gama"):
        DefenseConfig(name="abl", params={"gama": 0.5})
    with pytest.raises(ConfigError, match="defense.params.similarity"):
        DefenseConfig(name="prune", params={"similarity": "jaccard"})


def test_cache_key_follows_a_training_time_defense_settings() -> None:
    base = {"dataset": "AIDS", "attack": {"name": "sub_ba"}}
    make = lambda **p: DEFENSES.get("abl")(DefenseConfig(name="abl", params=p))  # noqa: E731
    assert defense_spec(make(), base) == defense_spec(make(gamma=0.5), base)  # defaults are explicit
    assert defense_spec(make(), base) != defense_spec(make(gamma=0.3), base)
    assert defense_spec(make(), base) != defense_spec(make(isolation_ratio=0.05), base)
    smoothing = DEFENSES.get("smoothing")(DefenseConfig(name="smoothing", params={"samples": 10}))
    assert defense_spec(smoothing, base) != defense_spec(
        DEFENSES.get("smoothing")(DefenseConfig(name="smoothing")), base
    )
    other_attack = {"dataset": "AIDS", "attack": {"name": "gta"}}
    assert defense_spec(make(), base) != defense_spec(make(), other_attack)
    assert ArtifactCache("/tmp/x").path("defended", defense_spec(make(), base)) != ArtifactCache(
        "/tmp/x"
    ).path("defended", defense_spec(make(gamma=0.3), base))


# ---- Prune ------------------------------------------------------------------------------------------------
def test_prune_removes_an_injected_dissimilar_edge_and_keeps_similar_ones(aids_native: GraphDataset) -> None:
    checked = 0
    for g in aids_native.graphs[:50]:
        labels = g.x.argmax(-1)
        connected = torch.zeros(g.num_nodes, g.num_nodes, dtype=torch.bool)
        connected[g.edge_index[0], g.edge_index[1]] = True
        same = (
            (labels.view(-1, 1) == labels.view(1, -1))
            & ~connected
            & ~torch.eye(g.num_nodes, dtype=torch.bool)
        )
        diff = (labels.view(-1, 1) != labels.view(1, -1)) & ~connected
        if not same.any() or not diff.any():
            continue
        (a, b), (c, d) = same.nonzero()[0].tolist(), diff.nonzero()[0].tolist()
        extra = torch.tensor([[a, b, c, d], [b, a, d, c]])
        ei = torch.cat([g.edge_index, extra], 1)
        keep = keep_mask(g.x, ei, torch.zeros(g.num_nodes, dtype=torch.long), 0.5, "native", None)
        assert keep[-4:].tolist() == [True, True, False, False]
        # the original edges between atoms of the same element survive
        orig_same = labels[g.edge_index[0]] == labels[g.edge_index[1]]
        assert keep[: g.edge_index.size(1)][orig_same].all()
        checked += 1
    assert checked >= 10


def test_prune_wrapper_classifies_the_pruned_graph(aids_native: GraphDataset) -> None:
    torch.manual_seed(0)
    model = build_graph_model("GIN", aids_native.num_features, 2, hidden=16).eval()
    wrapper = PrunedClassifier(model, aids_native.featurizer, 0, 0.5, "native").eval()
    g = aids_native.graphs[0]
    labels = g.x.argmax(-1)
    same_label_edges = g.edge_index[:, labels[g.edge_index[0]] == labels[g.edge_index[1]]]
    with torch.no_grad():
        expected = model(g.x, same_label_edges)
        got = wrapper(g.x, g.edge_index)
        assert torch.allclose(expected, got)
        assert wrapper.forward_full(g.x, g.edge_index).embedding.shape == (1, 16)
    pruned = 1 - same_label_edges.size(1) / g.edge_index.size(1)
    assert wrapper.diagnostics([g])["edges_pruned"] == pytest.approx(pruned)


# ---- Randomized Smoothing ------------------------------------------------------------------------------------
def test_smoothing_predicts_the_majority_of_its_samples_reproducibly(strong: Poisoned) -> None:
    torch.manual_seed(0)
    model = build_graph_model("GIN", strong.ds.num_features, 2, hidden=16)
    fit(model, strong.graphs[:200], TrainConfig(epochs=2, batch_size=64))
    model.eval()
    m = 15
    batch = Batch.from_data_list(strong.graphs[:40])
    recorded = []
    original = model.forward_full

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        out = original(*args, **kwargs)
        recorded.append(out.logits.detach())
        return out

    model.forward_full = spy  # type: ignore[method-assign]
    smooth = SmoothedClassifier(model, strong.ds.featurizer, seed=3, beta=0.5, mode="node", samples=m)
    with torch.no_grad():
        fractions = smooth(batch.x, batch.edge_index, batch.batch)
        sample_logits = recorded[0]  # the M subsampled copies, in one call
        assert sample_logits.shape == (m * 40, 2)
        preds = sample_logits.argmax(-1).view(m, 40)
        votes = torch.stack([(preds == c).sum(0) for c in range(2)], 1)
        assert torch.equal(fractions * m, votes.float())
        assert torch.equal(fractions.argmax(-1), votes.argmax(-1))
        again = smooth(batch.x, batch.edge_index, batch.batch)
        assert torch.equal(fractions, again)
        # the samples do differ from one another (it is a vote, not one prediction M times)
        assert (sample_logits.view(m, 40, 2).std(0) > 0).any()
    model.forward_full = original  # type: ignore[method-assign]
    assert 0.0 <= smooth.diagnostics(strong.graphs[:40])["abstain_rate"] <= 1.0


# ---- detection-style defenses: enrichment over the base rate ------------------------------------------------
def _flagged(name: str, strong: Poisoned, seed: int, **params: object) -> list[int]:
    defense = DEFENSES.get(name)(DefenseConfig(name=name, params=params, seed=seed))
    recipe = dataclasses.replace(strong.recipe, train=TrainConfig(epochs=6, batch_size=64))
    out = defense.train(plain_graphs(strong.graphs), recipe, seed)
    assert out.flagged is not None and len(out.flagged) > 0
    return out.flagged


@pytest.mark.parametrize("seed", [0, 1])
def test_abl_isolates_poisoned_graphs_above_the_base_rate(strong: Poisoned, seed: int) -> None:
    flagged = _flagged("abl", strong, seed, isolation_epochs=5, isolation_ratio=0.1, unlearn_epochs=1)
    precision = detection_metrics(flagged, strong.victims.tolist(), len(strong.graphs))["detect_precision"]
    assert precision > 1.5 * strong.base_rate, (precision, strong.base_rate)


@pytest.mark.parametrize("name", ["ed", "xgbd"])
def test_detectors_flag_poisoned_graphs_above_the_base_rate(strong: Poisoned, name: str) -> None:
    for seed in (0, 1):
        flagged = _flagged(name, strong, seed, explain_epochs=30, helper_epochs=6)
        d = detection_metrics(flagged, strong.victims.tolist(), len(strong.graphs))
        assert d["detect_precision"] > 2 * strong.base_rate, (seed, d)


def test_detection_metrics_against_the_true_poisoned_set() -> None:
    d = detection_metrics([1, 2, 3, 4], [3, 4, 5], 10, scores=[0, 0, 0, 9, 8, 7, 0, 0, 0, 0])
    assert d["detect_precision"] == 0.5 and d["detect_recall"] == 2 / 3
    assert d["detect_f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert d["detect_auroc"] == 1.0 and d["detect_base_rate"] == 0.3
    assert detection_metrics([], [1], 4)["detect_f1"] == 0.0
