"""Speed-ups that must not change a number: reused collations (GCleaner's per-epoch guard signals) and the
clean model trained in a child process (``attack.clean_concurrent``) give bitwise the same models and
metrics as the plain sequential path, on fixed seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gnnsec import batching, pipeline_clean
from gnnsec.cache import ArtifactCache, load_tensors
from gnnsec.config import DefenseConfig, TrainConfig, TrialConfig
from gnnsec.defenses import DefenderData
from gnnsec.defenses.gcleaner import GCleaner
from gnnsec.models import build_graph_model
from gnnsec.pipeline import clean_spec, run_trial
from gnnsec.train import fit
from tests.conftest import require_dataset
from tests.test_gcleaner import CAP, random_graph


def _timing(key: str) -> bool:
    return "seconds" in key or "cached" in key


def _same_metrics(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if not _timing(k):
            assert a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]), k  # equal, or both NaN


def test_gcleaner_with_reused_collations_is_bitwise_the_uncached_run(monkeypatch) -> None:
    from gnnsec.data.features import Featurizer

    featurizer = Featurizer("degree", CAP)
    gen = torch.Generator().manual_seed(0)
    graphs = [random_graph(6 + i % 5, i % 2, gen, featurizer) for i in range(24)]
    params = {
        "recovery_explainer": "gnnexplainer",
        "recovery_epochs": 3,
        "restarts": 1,
        "unlearn_epochs": 4,
        "teacher_epochs": 1,
        "require_detection": False,
        "min_flip_drop": 0.0,
        "max_acc_drop": 1.0,
        "max_balance_shift": 1.0,
        "guard_folds": 0,
    }
    runs = []
    for enabled in (False, True):
        cache = batching.CollationCache()
        cache.enabled = enabled
        monkeypatch.setattr("gnnsec.train.COLLATIONS", cache)
        torch.manual_seed(0)
        model = build_graph_model("GIN", featurizer.num_features, 2, hidden=16, num_layers=3)
        fit(model, graphs, TrainConfig(epochs=15, batch_size=8, lr=0.01, seed=0))  # not a one-class model
        out = GCleaner(DefenseConfig("gcleaner", params)).defend(model, DefenderData(graphs, 2, featurizer))
        runs.append((out, cache.hits))
    (plain, _), (fast, hits) = runs
    assert hits > 0  # the guard's signals reused collations
    assert fast.metrics["returned_input"] == 0.0  # an unlearned model, not the input
    _same_metrics(plain.metrics, fast.metrics)
    assert len(plain.history) == len(fast.history) == params["unlearn_epochs"]
    for a, b in zip(plain.history, fast.history, strict=True):
        _same_metrics(a, b)
    sa, sb = plain.model.state_dict(), fast.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def _tiny(tmp: Path, attack: str = "sub_ba", concurrent: bool = False) -> TrialConfig:
    return TrialConfig.from_dict(
        {
            "data": {"dataset": "AIDS", "root": str(tmp / "data")},
            "model": {"name": "GIN", "hidden": 16, "num_layers": 2},
            "train": {"epochs": 2, "step_size": 2},
            "attack": {"name": attack, "clean_concurrent": concurrent},
        }
    )


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_clean_model_trained_concurrently_gives_the_sequential_trial(
    mirror, tmp_path: Path, monkeypatch, method: str
) -> None:
    require_dataset(mirror, "TUDataset", "AIDS")
    if method == "spawn":  # what a trial with several intra-op threads uses
        monkeypatch.setattr(pipeline_clean.mp, "get_all_start_methods", lambda: ["spawn"])
    started = []
    real_start = pipeline_clean.start

    def spy(*args):  # noqa: ANN002, ANN202
        started.append(real_start(*args))
        return started[-1]

    monkeypatch.setattr(pipeline_clean, "start", spy)
    seq_cache, par_cache = ArtifactCache(tmp_path / "seq"), ArtifactCache(tmp_path / "par")
    seq = run_trial(_tiny(tmp_path), seq_cache)
    cfg = _tiny(tmp_path, concurrent=True)
    assert pipeline_clean.wanted(cfg, par_cache)
    par = run_trial(cfg, par_cache)
    assert started[-1] is not None and started[-1].exitcode == 0  # the child trained the clean model
    _same_metrics(seq.metrics, par.metrics)
    assert "clean_asr" in par.metrics and "clean_acc" in par.metrics
    spec = clean_spec(cfg)
    a = load_tensors(seq_cache.path("clean", spec) / "model.pt")
    b = load_tensors(par_cache.path("clean", spec) / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not pipeline_clean.wanted(cfg, par_cache)  # cached now: no child next time


@pytest.mark.parametrize("attack", ["exp_ba", "motif_ba"])
def test_no_child_when_the_attack_poisons_with_the_clean_model(tmp_path: Path, attack: str) -> None:
    cfg = _tiny(tmp_path, attack, concurrent=True)
    assert not pipeline_clean.wanted(cfg, ArtifactCache(tmp_path / "c"))
    assert not pipeline_clean.wanted(_tiny(tmp_path), ArtifactCache(tmp_path / "c"))  # not asked for


def test_a_concurrent_trial_splits_its_cpus_between_its_two_processes() -> None:
    from argparse import Namespace
    from types import SimpleNamespace

    from sweeps.driver import trial_param

    def spec(concurrent: bool) -> SimpleNamespace:
        attack = {"name": "sub_ba", "clean_concurrent": concurrent}
        return SimpleNamespace(name="t", subsweep="s", factor={}, config={"attack": attack})

    two = Namespace(cpus_per_trial=2.0)
    assert trial_param(spec(True), two, "c")["threads"] == 1  # two processes, one thread each
    assert trial_param(spec(False), two, "c")["threads"] == 2
    assert trial_param(spec(True), Namespace(cpus_per_trial=1.0), "c")["threads"] == 1
