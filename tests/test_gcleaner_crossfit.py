"""GCleaner's cross-fitted "do no harm" guard (gnnsec/defenses/gcleaner/crossfit.py): every clean graph is
judged by a student that never trained on it, the schedule is chosen on those pooled signals, and a
harmful unlearning schedule is refused on real models over several seeds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from gnnsec.config import DefenseConfig
from gnnsec.data.features import Featurizer
from gnnsec.defenses import DefenderData
from gnnsec.defenses.gcleaner import GCleaner, GCleanerParams, crossfit
from gnnsec.models import build_graph_model
from tests.conftest import aids_small_config, require_dataset
from tests.test_gcleaner import CAP, random_graph

FAST = {"recovery_explainer": "random", "recovery_epochs": 2, "restarts": 1, "teacher_epochs": 1}


@pytest.fixture()
def toy() -> tuple[list[Data], Featurizer]:
    featurizer = Featurizer("degree", CAP)
    gen = torch.Generator().manual_seed(0)
    return [random_graph(6 + i % 5, i % 2, gen, featurizer) for i in range(20)], featurizer


def _model(featurizer: Featurizer, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_graph_model("GIN", featurizer.num_features, 2, hidden=16, num_layers=2).eval()


@pytest.mark.parametrize(
    ("n", "asked", "expected"), [(50, 5, 5), (60, 5, 5), (6, 5, 3), (4, 5, 2), (3, 5, 0)]
)
def test_fold_count_keeps_at_least_two_graphs_per_fold(n: int, asked: int, expected: int) -> None:
    assert crossfit.fold_count(n, asked) == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_folds_partition_the_clean_graphs_stratified(seed: int) -> None:
    labels = [0] * 30 + [1] * 15 + [2] * 5
    folds = crossfit.make_folds(labels, 5, seed)
    held = np.concatenate(folds)
    assert sorted(held.tolist()) == list(range(50))  # every graph held out exactly once
    for f in folds:  # stratified: each fold holds 6 / 3 / 1 graphs of the three classes
        assert np.bincount(np.asarray(labels)[f], minlength=3).tolist() == [6, 3, 1]
    # a class with fewer graphs than folds: plain (shuffled) K-fold, still a partition
    folds = crossfit.make_folds([0] * 9 + [1], 5, seed)
    assert sorted(np.concatenate(folds).tolist()) == list(range(10))


def test_every_graph_is_judged_by_a_student_that_never_trained_on_it(toy, monkeypatch) -> None:
    graphs, featurizer = toy
    model = _model(featurizer)
    calls: list[tuple[set[int], set[int]]] = []
    real_unlearn, real_outputs = crossfit.unlearn, crossfit.outputs
    measured: list[set[int]] = []

    def recording_unlearn(student, teacher, fit, triggered, p, seed, on_epoch=None):  # noqa: ANN001, ANN202
        measured.clear()
        out = real_unlearn(student, teacher, fit, triggered, p, seed, on_epoch=on_epoch)
        calls.append(({id(g) for g in fit}, set().union(*measured)))
        return out

    def recording_outputs(m, clean, trig):  # noqa: ANN001, ANN202
        measured.append({id(g) for g in clean})
        return real_outputs(m, clean, trig)

    monkeypatch.setattr(crossfit, "unlearn", recording_unlearn)
    monkeypatch.setattr(crossfit, "outputs", recording_outputs)
    p = GCleanerParams(unlearn_epochs=3, teacher_epochs=1, batch_size=8)
    folds = crossfit.make_folds([int(g.y) for g in graphs], 4, 0)
    rows = crossfit.crossfit_rows(model, graphs, graphs, folds, 2, 1, p, 0)
    assert len(calls) == 4
    for fit_ids, held_ids in calls:
        assert fit_ids and held_ids and not fit_ids & held_ids
    assert set().union(*(h for _, h in calls)) == {id(g) for g in graphs}
    assert [r["epoch"] for r in rows] == [0.0, 1.0, 2.0]
    assert all(r["n_acc"] == len(graphs) for r in rows)  # pooled over all the clean graphs


def _rows_guard(accept: set[int]):  # noqa: ANN202
    return lambda sig, before, p: (int(sig["epoch"]) in accept, "test")


def test_the_schedule_is_the_accepted_epoch_with_the_best_objective(toy, monkeypatch) -> None:
    graphs, featurizer = toy
    model = _model(featurizer)
    p = GCleanerParams(unlearn_epochs=4, teacher_epochs=1, lr=0.05)
    fake = [
        {"epoch": float(e), "val_acc": 0.5, "val_flip": tp, "val_soft_acc": 0.5, "val_trigger_prob": tp}
        for e, tp in enumerate([0.9, 0.2, 0.6, 0.1])
    ]
    monkeypatch.setattr(crossfit, "crossfit_rows", lambda *a, **kw: [dict(r) for r in fake])
    before = {"val_acc": 0.5, "val_flip": 0.9, "val_trigger_prob": 0.9}
    s = crossfit.choose_schedule(model, graphs, graphs, 2, 1, p, 0, 4, before, _rows_guard({0, 1, 2}))
    assert (s.epochs, s.lr, s.attempts) == (2, 0.05, 1)  # epoch 3 has the best J but was rejected
    assert s.chosen is not None and s.chosen["objective"] == pytest.approx(0.5 + 0.7)
    s = crossfit.choose_schedule(model, graphs, graphs, 2, 1, p, 0, 4, before, _rows_guard(set()))
    assert s.epochs == 0 and s.chosen is None and s.attempts == p.lr_retries + 1
    assert s.lr == pytest.approx(0.05 * p.lr_backoff**p.lr_retries)


def test_defend_unlearns_on_all_clean_graphs_for_the_chosen_schedule(toy, monkeypatch) -> None:
    from gnnsec.defenses.gcleaner import defense as gdefense

    graphs, featurizer = toy
    model = _model(featurizer)
    seen: list[tuple[int, float, int]] = []
    real_unlearn = gdefense.unlearn

    def recording_unlearn(student, teacher, fit, triggered, p, seed, on_epoch=None):  # noqa: ANN001, ANN202
        seen.append((len(fit), p.lr, p.unlearn_epochs))
        return real_unlearn(student, teacher, fit, triggered, p, seed, on_epoch=on_epoch)

    real_signals = gdefense.prediction_signals

    def two_class_signals(m, g, k):  # noqa: ANN001, ANN202  (the untrained toy model predicts one class)
        return {**real_signals(m, g, k), "collapsed": 0.0}

    monkeypatch.setattr(gdefense, "unlearn", recording_unlearn)
    monkeypatch.setattr(gdefense, "prediction_signals", two_class_signals)
    monkeypatch.setattr(gdefense, "_guard", lambda sig, before, p: (int(sig["epoch"]) in (0, 1), "test"))
    params = {**FAST, "require_detection": False, "unlearn_epochs": 4, "lr": 0.05, "guard_folds": 4}
    out = GCleaner(DefenseConfig("gcleaner", params)).defend(model, DefenderData(graphs, 2, featurizer))
    assert out.metrics["guard_folds"] == 4.0 and out.metrics["returned_input"] == 0.0
    assert out.metrics["n_acc_before"] == len(graphs) and out.metrics["n_acc_after"] == len(graphs)
    assert seen == [(len(graphs), 0.05, out.metrics["epochs_run"])]  # one final run, on every graph
    assert out.metrics["epochs_run"] in (1.0, 2.0) and len(out.history) == out.metrics["epochs_run"]


def test_when_no_cross_fitted_epoch_passes_the_input_model_comes_back(toy, monkeypatch) -> None:
    from gnnsec.defenses.gcleaner import defense as gdefense

    graphs, featurizer = toy
    model = _model(featurizer)
    monkeypatch.setattr(gdefense, "_guard", lambda sig, before, p: (False, "test: reject"))
    params = {**FAST, "require_detection": False, "unlearn_epochs": 2, "guard_folds": 4}
    out = GCleaner(DefenseConfig("gcleaner", params)).defend(model, DefenderData(graphs, 2, featurizer))
    assert out.metrics["returned_input"] == 1.0 and out.metrics["unchanged_reason"] == 3.0
    assert out.metrics["unlearn_attempts"] == 3.0
    sa, sb = out.model.state_dict(), model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and out.model is not model


# ---- on real models: a harmful schedule is refused, over three seeds ------------------------------------
SEEDS = (0, 1, 2)


@pytest.mark.slow
def test_the_cross_fitted_guard_refuses_a_harmful_schedule_on_aids(mirror, tmp_path: Path) -> None:  # noqa: ANN001
    """Unlearning at a learning rate far too large (Adam 0.3, no retries) wrecks the student; the
    cross-fitted guard sees it on all 60 clean graphs, so over three seeds the defended model keeps the
    backdoored model's test accuracy (mean within 2 points, every seed within 5) instead of collapsing."""
    require_dataset(mirror, "TUDataset", "AIDS")
    from gnnsec.cache import ArtifactCache
    from gnnsec.pipeline import run_trial

    cache = ArtifactCache(tmp_path / "artifacts")
    runs = []
    for seed in SEEDS:
        cfg = aids_small_config(tmp_path, "sub_ba", seed, {"lr": 0.3, "lr_retries": 0, "guard_folds": 5})
        runs.append(dict(run_trial(cfg, cache).metrics))
    ctx = [{k: r[k] for k in ("backdoor_acc", "defended_acc", "defense_returned_input")} for r in runs]
    drop = [r["backdoor_acc"] - r["defended_acc"] for r in runs]
    assert sum(drop) / len(drop) <= 0.02, ctx
    assert max(drop) <= 0.05, ctx
    assert all(r["defense_guard_folds"] == 5.0 for r in runs), ctx
    assert all(not math.isnan(r["defense_val_acc_before"]) for r in runs), ctx
