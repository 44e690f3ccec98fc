"""GCleaner: the defender's API cannot see the attack; every loss term is differentiable where it must be;
and end to end on AIDS it removes a Sub-BA backdoor while keeping accuracy."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math

import pytest
import torch
from torch_geometric.data import Batch, Data

from gnnsec.attacks.inject import binarize, replace_subgraph, soft_inject
from gnnsec.config import DefenseConfig
from gnnsec.data.features import Featurizer, degree_onehot
from gnnsec.defenses import DefenderData
from gnnsec.defenses.gcleaner import GCleaner, GCleanerParams
from gnnsec.defenses.gcleaner.recovery import similarity_hinge
from gnnsec.defenses.gcleaner.trigger import Placement, TriggerGenerator, selected_features
from gnnsec.defenses.gcleaner.unlearning import unlearning_loss
from gnnsec.errors import ConfigError
from gnnsec.explain import HEATMAPS, NODE_EXPLAINERS
from gnnsec.models import build_graph_model
from tests.conftest import aids_small_config, require_dataset

CAP = 6


def random_graph(n: int, y: int, gen: torch.Generator, featurizer: Featurizer) -> Data:
    """A connected random graph: a random tree plus a few extra edges, degree features."""
    parents = [int(torch.randint(0, v, (1,), generator=gen)) for v in range(1, n)]
    edges = list(zip(parents, range(1, n)))
    for _ in range(n // 3):
        a, b = torch.randint(0, n, (2,), generator=gen).tolist()
        if a != b:
            edges.append((a, b))
    ei = torch.tensor(edges).t()
    ei = torch.cat([ei, ei.flip(0)], 1).unique(dim=1)
    x_native = torch.nn.functional.one_hot(torch.randint(0, 4, (n,), generator=gen), 4).float()
    g = Data(edge_index=ei, y=torch.tensor([y]), num_nodes=n, x_native=x_native)
    g.x = featurizer.features(ei, n, x_native)
    return g


@pytest.fixture()
def toy() -> tuple[list[Data], Featurizer]:
    featurizer = Featurizer("degree", CAP)
    gen = torch.Generator().manual_seed(0)
    return [random_graph(6 + i % 5, i % 2, gen, featurizer) for i in range(12)], featurizer


# ---- what the defender can see ---------------------------------------------------------------------------
def test_defend_sees_only_the_model_and_the_clean_set() -> None:
    assert list(inspect.signature(GCleaner.defend).parameters) == ["self", "model", "clean"]
    assert {f.name for f in dataclasses.fields(DefenderData)} == {"graphs", "num_classes", "featurizer"}
    knobs = {f.name for f in dataclasses.fields(GCleanerParams)}
    assert not any("target" in k or k.startswith("trigger") or "attack" in k for k in knobs)


@pytest.mark.parametrize("key", ["target_label", "target", "trigger", "trigger_adj", "attack"])
def test_params_naming_the_attack_are_rejected(key: str) -> None:
    with pytest.raises(ConfigError) as err:
        DefenseConfig("gcleaner", {key: 1})
    assert f"defense.params.{key}" in str(err.value) and "recovery_explainer" in str(err.value)


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"n": 0}, "defense.params.n=0"),
        ({"n": 8}, "[1, 7]"),
        ({"optimizer": "rmsprop"}, "adam, sgd"),
        ({"heatmap": "nope"}, "gradcam"),
        ({"recovery_explainer": "nope"}, "gnnexplainer"),
        ({"l_explain": 1}, "True, False"),
        ({"lr": 0}, "positive"),
        ({"restarts": 1.5}, "integer"),
        ({"val_fraction": 0.95}, "[0.0, 0.9]"),
        ({"lambda": 1.0, "lam": 1.0}, "not both"),
    ],
)
def test_bad_params_name_field_value_and_choices(params: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        DefenseConfig("gcleaner", params)
    assert needle in str(err.value)


def test_every_registered_explainer_and_heatmap_is_accepted() -> None:
    for name in NODE_EXPLAINERS.names():
        DefenseConfig("gcleaner", {"recovery_explainer": name})
    for name in HEATMAPS.names():
        DefenseConfig("gcleaner", {"heatmap": name})
    p = GCleaner(DefenseConfig("gcleaner", {"lambda": 2.0, "T": 0.5})).settings
    assert (p.lam, p.threshold) == (2.0, 0.5)


# ---- differentiability ---------------------------------------------------------------------------------
def test_degree_onehot_is_exact_and_differentiable() -> None:
    ei = torch.tensor([[0, 1, 1, 2, 0, 2, 3], [1, 0, 2, 1, 2, 0, 0]])
    w = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0], requires_grad=True)
    x = degree_onehot(ei, w, 4, cap=3)
    kept = ei[:, w.detach() > 0]
    assert torch.equal(x.detach(), Featurizer("degree", 3).degree_features(kept, 4))
    (x * torch.arange(4.0)).sum().backward()  # "degree bin" grows with every edge weight (below the cap)
    assert w.grad is not None and bool((w.grad > 0).all())
    x = degree_onehot(ei, w.detach(), 4, cap=1)  # clipped like the featurizer
    assert torch.equal(x, Featurizer("degree", 1).degree_features(kept, 4))


@pytest.mark.parametrize("mode", ["degree", "native"])
def test_binarised_adjacency_passes_gradients_to_the_generator(toy, mode: str) -> None:
    graphs, _ = toy
    featurizer = Featurizer(mode, CAP, native_dim=4)
    for g in graphs:
        g.x = featurizer.features(g.edge_index, g.num_nodes, g.x_native)
    torch.manual_seed(0)
    model = build_graph_model("GIN", featurizer.num_features, 2, hidden=16, num_layers=2).eval()
    n = 3
    gen = TriggerGenerator(n, featurizer.num_features, hidden=16)
    batch = Batch.from_data_list(graphs)
    place = Placement(torch.tensor([[0, 2, 4]] * len(graphs)), torch.ones(len(graphs), n, dtype=torch.bool))
    feats, soft = gen(selected_features(batch, place))
    adj = binarize(soft)
    assert set(adj.detach().unique().tolist()) <= {0.0, 1.0}
    x, ei, w = soft_inject(batch, place.positions, place.mask, adj, feats, featurizer)
    out = model.forward_full(x, ei, batch.batch, w)
    # the weighted graph is exactly the hard triggered graph in the forward pass
    hard = replace_subgraph(batch, place.positions, place.mask, adj.detach(), feats.detach(), featurizer)
    ref = model.forward_full(hard.x, hard.edge_index, hard.batch)
    assert torch.allclose(out.logits, ref.logits, atol=1e-5)
    similarity_hinge(out.logits, 1.0).backward()
    assert gen.w_a.weight.grad is not None and gen.w_a.weight.grad.abs().sum() > 0
    if mode == "native":
        assert gen.w_f.weight.grad is not None and gen.w_f.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("model_name", ["GIN", "GCN"])
def test_heatmap_loss_trains_the_student(toy, model_name: str) -> None:
    graphs, featurizer = toy
    torch.manual_seed(0)
    student = build_graph_model(model_name, featurizer.num_features, 2, hidden=16, num_layers=3).eval()
    teacher = build_graph_model(model_name, featurizer.num_features, 2, hidden=16, num_layers=3).eval()
    clean = Batch.from_data_list(graphs)
    place = Placement(torch.tensor([[1, 2, 3]] * len(graphs)), torch.ones(len(graphs), 3, dtype=torch.bool))
    triangle = torch.ones(3, 3) - torch.eye(3)
    trig = replace_subgraph(clean, place.positions, place.mask, triangle, None, featurizer)
    only_explain = GCleanerParams(l1_unlearn=False, l2_unlearn=False, l_explain=True, lam=1.0)
    terms = unlearning_loss(student, teacher, clean, trig, only_explain)
    assert terms.explain > 0 and terms.l1 == 0 and terms.l2 == 0
    terms.total.backward()
    grads = [p.grad for p in student.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    assert all(p.grad is None for p in teacher.parameters())
    student.zero_grad()
    off = GCleanerParams(heatmap="none", l1_unlearn=False, l2_unlearn=False)
    assert float(unlearning_loss(student, teacher, clean, trig, off).total) == 0.0


# ---- end to end: several seeds, margins -------------------------------------------------------------------
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def aids_runs(mirror, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:  # noqa: ANN001
    """GCleaner (defaults) against Sub-BA on AIDS for three seeds, and each seed's never-poisoned model given
    to the same defense; small models (hidden 32, 20 epochs) to stay fast."""
    require_dataset(mirror, "TUDataset", "AIDS")
    from gnnsec.cache import ArtifactCache
    from gnnsec.data.loading import load_graph_dataset
    from gnnsec.defenses import DEFENSES
    from gnnsec.pipeline import clean_model, run_trial
    from gnnsec.train import evaluate

    tmp = tmp_path_factory.mktemp("aids_e2e")
    cache = ArtifactCache(tmp / "artifacts")
    runs = []
    for seed in SEEDS:
        cfg = aids_small_config(tmp, "sub_ba", seed)
        m = dict(run_trial(cfg, cache).metrics)
        ds = load_graph_dataset(cfg.data)
        split = ds.split(cfg.data)
        model, _ = clean_model(cfg, ds, split, cache)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        out = DEFENSES.get("gcleaner")(cfg.defense).defend(
            model, DefenderData(ds.subset(split.holding), ds.num_classes, ds.featurizer)
        )
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        test = ds.subset(split.test)
        m["cleanmodel_acc_before"] = evaluate(model, test).acc
        m["cleanmodel_acc_after"] = evaluate(out.model, test).acc
        m["cleanmodel_flagged"] = out.metrics["backdoor_believed"]
        m["target"] = cfg.attack.target_label
        runs.append(m)
    keys = ("backdoor_asr", "clean_asr", "defended_asr", "backdoor_acc", "defended_acc", "recovery_asr")
    keys += ("defense_backdoor_believed", "defense_believed_class", "cleanmodel_acc_before")
    keys += ("cleanmodel_acc_after", "cleanmodel_flagged")
    logging.getLogger(__name__).warning("AIDS e2e runs: %s", [{k: r.get(k) for k in keys} for r in runs])
    return runs


def _mean(runs: list[dict], key: str) -> float:
    return sum(r[key] for r in runs) / len(runs)


@pytest.mark.slow
def test_gcleaner_removes_a_sub_ba_backdoor_on_aids(aids_runs: list[dict]) -> None:
    """Over three seeds (means, so that one seed's floating-point luck on some CPU cannot decide): the
    backdoor is there, the defended ASR comes down near the clean model's floor, accuracy is kept."""
    ctx = [
        {k: r[k] for k in ("backdoor_asr", "clean_asr", "defended_asr", "backdoor_acc", "defended_acc")}
        for r in aids_runs
    ]
    assert _mean(aids_runs, "backdoor_asr") >= 0.8, ctx  # otherwise there is nothing to defend against
    assert _mean(aids_runs, "defended_asr") <= _mean(aids_runs, "clean_asr") + 0.15, ctx
    assert _mean(aids_runs, "defended_asr") <= _mean(aids_runs, "backdoor_asr") - 0.5, ctx
    assert _mean(aids_runs, "defended_acc") >= _mean(aids_runs, "backdoor_acc") - 0.03, ctx
    assert all(r["defended_acc"] >= r["backdoor_acc"] - 0.05 for r in aids_runs), ctx
    assert all(not math.isnan(r["defense_val_acc_before"]) for r in aids_runs)


@pytest.mark.slow
def test_gcleaner_names_the_backdoor_class_on_aids(aids_runs: list[dict]) -> None:
    """Detection: at least two of three backdoored models are flagged, with the backdoor's class."""
    right = [
        r["defense_backdoor_believed"] == 1 and r["defense_believed_class"] == r["target"] for r in aids_runs
    ]
    assert sum(right) >= 2, [(r["defense_backdoor_believed"], r["defense_believed_class"]) for r in aids_runs]


@pytest.mark.slow
def test_gcleaner_does_no_harm_to_a_clean_model_on_aids(aids_runs: list[dict]) -> None:
    """Isolation: a never-poisoned model given to the defense keeps its test accuracy within a point."""
    for r in aids_runs:
        assert abs(r["cleanmodel_acc_after"] - r["cleanmodel_acc_before"]) <= 0.01, r


@pytest.fixture(scope="module")
def aids_gta_runs(mirror, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:  # noqa: ANN001
    """GCleaner (defaults) against GTA on AIDS, three seeds, small models (hidden 32, 20 epochs)."""
    require_dataset(mirror, "TUDataset", "AIDS")
    from gnnsec.cache import ArtifactCache
    from gnnsec.pipeline import run_trial

    tmp = tmp_path_factory.mktemp("aids_gta")
    cache = ArtifactCache(tmp / "artifacts")
    runs = []
    for seed in SEEDS:
        runs.append(dict(run_trial(aids_small_config(tmp, "gta", seed), cache).metrics))
    return runs


@pytest.mark.slow
def test_gcleaner_removes_a_gta_backdoor_on_aids(aids_gta_runs: list[dict]) -> None:
    """The quick-sweep regression (AIDS GTA came back at ASR 94 % because the guard vetoed every epoch):
    over three seeds the backdoor is removed to near the floor, accuracy kept, and the defense returns the
    input model for at most one seed. (Measured, hidden 32: raw 92-96 %, floor 6-15 %, defended 3-9 %.)"""
    keys = ("backdoor_asr", "clean_asr", "defended_asr", "backdoor_acc", "defended_acc")
    ctx = [{k: r[k] for k in (*keys, "defense_returned_input")} for r in aids_gta_runs]
    assert _mean(aids_gta_runs, "backdoor_asr") >= 0.8, ctx
    assert _mean(aids_gta_runs, "defended_asr") <= _mean(aids_gta_runs, "clean_asr") + 0.15, ctx
    assert _mean(aids_gta_runs, "defended_acc") >= _mean(aids_gta_runs, "backdoor_acc") - 0.03, ctx
    assert sum(r["defense_returned_input"] for r in aids_gta_runs) <= 1, ctx


@pytest.mark.parametrize(("n", "mode"), [(1, "degree"), (3, "degree"), (3, "native")])
def test_defend_on_toy_graphs_reports_history_metrics_and_an_injector(toy, n: int, mode: str) -> None:
    graphs, _ = toy
    featurizer = Featurizer(mode, CAP, native_dim=4)
    for g in graphs:
        g.x = featurizer.features(g.edge_index, g.num_nodes, g.x_native)
    torch.manual_seed(0)
    model = build_graph_model("GIN", featurizer.num_features, 2, hidden=16, num_layers=2).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = {
        "n": n,
        "recovery_explainer": "random",
        "recovery_epochs": 2,
        "restarts": 2,
        "unlearn_epochs": 3,
        "teacher_epochs": 2,
        "batch_size": 4,
        # an untrained model has no backdoor: switch detection and the guard off to exercise the mechanics
        "require_detection": False,
        "min_flip_drop": 0.0,
        "max_acc_drop": 1.0,
        "max_balance_shift": 1.0,
        "guard_folds": 0,  # the single split's per-epoch history (cross-fitting: test_gcleaner_crossfit.py)
    }
    outcome = GCleaner(DefenseConfig("gcleaner", params)).defend(model, DefenderData(graphs, 2, featurizer))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # input model untouched
    assert [row["epoch"] for row in outcome.history] == [0.0, 1.0, 2.0]
    assert {"val_acc", "val_flip", "fit_flip", "l1_unlearn", "l2_unlearn", "l_explain"} <= set(
        outcome.history[0]
    )
    for key in ("recovery_seconds", "unlearn_seconds", "recovery_loss", "chosen_restart", "val_acc_before"):
        assert key in outcome.metrics
    assert outcome.metrics["n_fit"] + outcome.metrics["n_val"] == len(graphs)
    assert outcome.recovered_injector is not None
    triggered = outcome.recovered_injector(graphs[:5])
    for g, t in zip(graphs[:5], triggered):
        assert t.num_nodes == g.num_nodes and int(t.y) == int(g.y)
        if mode == "degree":  # features follow the (new) degrees
            assert torch.equal(t.x, featurizer.degree_features(t.edge_index, t.num_nodes))
        # only the n trigger nodes change: their edges among themselves, and (native) their features
        old_edges, new_edges = (
            set(map(tuple, g.edge_index.t().tolist())),
            set(map(tuple, t.edge_index.t().tolist())),
        )
        touched = {v for e in old_edges ^ new_edges for v in e}
        if mode == "native":
            touched |= set(torch.nonzero((t.x != g.x).any(-1)).view(-1).tolist())
        assert len(touched) <= n


def test_pseudo_labels_let_auxiliary_data_stand_in_for_the_clean_set(toy) -> None:
    """Table 5: clean graphs from another dataset carry foreign labels; with ``pseudo_labels`` the defender
    labels them with the backdoored model's own predictions (so its validation accuracy starts at 100%)."""
    graphs, featurizer = toy
    torch.manual_seed(0)
    model = build_graph_model("GCN", featurizer.num_features, 2, hidden=8).eval()
    params = {"recovery_explainer": "random", "recovery_epochs": 1, "restarts": 1, "unlearn_epochs": 1}
    params["pseudo_labels"] = True
    outcome = GCleaner(DefenseConfig("gcleaner", params)).defend(model, DefenderData(graphs, 2, featurizer))
    assert outcome.metrics["val_acc_before"] == 1.0
    assert [int(g.y) for g in graphs] == [i % 2 for i in range(len(graphs))]  # the caller's graphs untouched


# ---- do no harm ------------------------------------------------------------------------------------------
def _toy_model(featurizer: Featurizer):  # noqa: ANN202
    torch.manual_seed(0)
    return build_graph_model("GIN", featurizer.num_features, 2, hidden=16, num_layers=2).eval()


# guard_folds = 0: these tests exercise the single fit / validation split (cross-fitting:
# tests/test_gcleaner_crossfit.py)
FAST = {
    "recovery_explainer": "random",
    "recovery_epochs": 2,
    "restarts": 1,
    "teacher_epochs": 1,
    "guard_folds": 0,
}


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_below_the_minimum_clean_set_the_input_model_comes_back(toy) -> None:
    graphs, featurizer = toy
    model = _toy_model(featurizer)
    out = GCleaner(DefenseConfig("gcleaner", FAST)).defend(model, DefenderData(graphs[:3], 2, featurizer))
    assert out.metrics["returned_input"] == 1.0 and out.metrics["unchanged_reason"] == 1.0
    assert _same(out.model, model) and out.model is not model


def test_when_no_epoch_passes_the_guard_the_input_model_comes_back(toy) -> None:
    graphs, featurizer = toy
    model = _toy_model(featurizer)
    params = {**FAST, "require_detection": False, "min_flip_drop": 1.0, "unlearn_epochs": 3, "lr": 0.1}
    out = GCleaner(DefenseConfig("gcleaner", params)).defend(model, DefenderData(graphs, 2, featurizer))
    assert out.metrics["unchanged_reason"] == 3.0 and _same(out.model, model)
    assert len(out.history) == 3 and all(row["guard_ok"] == 0.0 for row in out.history)
    # it tried the default lr_retries = 2 smaller learning rates first, 3 epochs each
    assert out.metrics["unlearn_attempts"] == 3.0 and out.metrics["epochs_run"] == 9.0
    assert out.metrics["unlearn_lr"] == pytest.approx(0.1 * 0.3 * 0.3)


def test_a_rejected_schedule_is_retried_from_the_input_model_at_a_smaller_lr(toy, monkeypatch) -> None:
    """When the guard rejects every epoch, unlearning restarts from the input model at lr x lr_backoff and
    stops retrying at the first accepted epoch."""
    from gnnsec.defenses.gcleaner import defense as gdefense

    graphs, featurizer = toy
    model = _toy_model(featurizer)
    calls: list[tuple[float, bool]] = []
    real_unlearn, real_guard = gdefense.unlearn, gdefense._guard

    def recording_unlearn(student, teacher, fit, triggered, p, seed, on_epoch=None):  # noqa: ANN001, ANN202
        calls.append((p.lr, _same(student, model)))
        return real_unlearn(student, teacher, fit, triggered, p, seed, on_epoch=on_epoch)

    def strict_first_guard(sig, before, p):  # noqa: ANN001, ANN202
        ok, why = real_guard(sig, before, p)
        return (False, "test: reject the first attempt") if len(calls) < 2 else (ok or True, why)

    monkeypatch.setattr(gdefense, "unlearn", recording_unlearn)
    monkeypatch.setattr(gdefense, "_guard", strict_first_guard)
    params = {**FAST, "require_detection": False, "unlearn_epochs": 2, "lr": 0.1, "lr_backoff": 0.5}
    out = GCleaner(DefenseConfig("gcleaner", params)).defend(model, DefenderData(graphs, 2, featurizer))
    assert [lr for lr, _ in calls] == pytest.approx([0.1, 0.05])  # retried once, then accepted
    assert all(fresh for _, fresh in calls)  # every attempt starts from the input model
    assert out.metrics["returned_input"] == 0.0 and out.metrics["unlearn_attempts"] == 2.0
    assert not _same(out.model, model)


def test_the_guard_never_accepts_a_model_predicting_one_class() -> None:
    from gnnsec.defenses.gcleaner.defense import _guard

    before = {"val_acc": 0.5, "val_flip": 1.0, "fit_flip": 1.0, "balance_shift": 0.5, "collapsed": 1.0}
    loose = GCleanerParams(max_acc_drop=1.0, min_flip_drop=0.0, max_balance_shift=1.0)
    ok, why = _guard({**before, "val_flip": 0.0}, before, loose)
    assert not ok and "one class" in why
    assert _guard({**before, "val_flip": 0.0, "collapsed": 0.0}, before, loose)[0]
    strict = GCleanerParams()  # defaults: no accuracy loss, flip rate down by 0.3
    assert not _guard({**before, "val_acc": 0.4, "val_flip": 0.0, "collapsed": 0.0}, before, strict)[0]
    assert not _guard({**before, "val_flip": 0.8, "collapsed": 0.0}, before, strict)[0]


@pytest.mark.parametrize("n_val", [20, 24, 30])
def test_the_guard_tolerates_one_validation_graph_but_not_two(n_val: int) -> None:
    """Regression (quick sweep, AIDS GTA seed 0): with ``max_acc_drop = 0`` every unlearning epoch lost
    exactly one of AIDS' 24 validation graphs (1.000 -> 0.958) while the flip rate fell 1.0 -> 0.0 and test
    accuracy stayed at 99.4-99.7 %; the guard vetoed all 30 epochs and the backdoor (ASR 94 %) came back.
    One graph is below the guard's resolution; two are a real loss (those epochs cost 3-6 test points)."""
    from gnnsec.defenses.gcleaner.defense import _guard

    p = GCleanerParams()  # the defaults
    before = {"n_acc": float(n_val), "val_acc": 1.0, "val_flip": 1.0, "fit_flip": 1.0}
    before.update({"balance_shift": 0.02, "collapsed": 0.0})
    unlearned = {**before, "val_flip": 0.0, "fit_flip": 0.0}

    def acc(k: int) -> float:  # as prediction_signals computes it: a float32 mean
        return float((torch.arange(n_val) >= k).float().mean())

    assert _guard({**unlearned, "val_acc": acc(1)}, before, p)[0]
    ok, why = _guard({**unlearned, "val_acc": acc(2)}, before, p)
    assert not ok and "validation accuracy" in why
    # with many validation graphs the fractional tolerance (max_acc_drop) governs, not one graph
    big = {**before, "n_acc": 1000.0}
    assert not _guard({**unlearned, "n_acc": 1000.0, "val_acc": 0.99}, big, p)[0]
    assert _guard({**unlearned, "n_acc": 1000.0, "val_acc": 0.999}, big, p)[0]


def test_prediction_signals_flag_a_collapsed_model(toy) -> None:
    from gnnsec.defenses.gcleaner.signals import prediction_signals

    graphs, featurizer = toy
    model = _toy_model(featurizer)
    with torch.no_grad():  # a head that always says class 1
        head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
        head.weight.zero_()
        head.bias.copy_(torch.tensor([-5.0, 5.0]))
    sig = prediction_signals(model, graphs, 2)
    assert sig["collapsed"] == 1.0 and sig["acc"] == 0.5 and abs(sig["balance_shift"] - 0.5) < 1e-6


def test_a_progress_hook_can_stop_unlearning_early(toy) -> None:
    graphs, featurizer = toy
    model = _toy_model(featurizer)
    params = {**FAST, "require_detection": False, "unlearn_epochs": 5}
    defense = GCleaner(DefenseConfig("gcleaner", params))
    seen: list[int] = []

    def hook(epoch: int, row: dict) -> bool:
        seen.append(epoch)
        assert "val_acc" in row and "selected_score" in row  # the defender's signals, live
        return epoch >= 1  # "stop" after the second epoch

    defense.on_epoch = hook
    out = defense.defend(model, DefenderData(graphs, 2, featurizer))
    assert seen == [0, 1] and len(out.history) == 2


def test_anomaly_index_flags_the_outlier_class() -> None:
    from gnnsec.defenses.gcleaner.signals import anomaly_index

    assert anomaly_index(torch.tensor([0.1, 0.2, 0.15, 0.95]), 3) > 2
    assert anomaly_index(torch.tensor([0.1, 0.2, 0.15, 0.18]), 1) < 2
    assert math.isnan(anomaly_index(torch.tensor([0.1, 0.9]), 1))
