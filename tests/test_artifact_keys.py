"""Train once, share everywhere: the sweep driver's model keys are the pipeline's cache keys, and no two
trials of a preset train the same model under two keys (gnnsec/artifact_keys.py)."""

from __future__ import annotations

import copy
import json

import pytest

from gnnsec import pipeline
from gnnsec.artifact_keys import needs_clean_model, trial_models
from gnnsec.cache import ArtifactCache, cache_key
from gnnsec.config import TrialConfig
from gnnsec.defenses import DEFENSES, TrainingDefense
from gnnsec.models import GRAPH_MODELS
from gnnsec.node_trial import base_spec
from gnnsec.pipeline_defense import defense_spec
from gnnsec.registry import ATTACKS, DATASETS
from sweeps import grids
from sweeps.spec import expand

PRESETS = ("quick", "paper")


@pytest.fixture(scope="module", params=PRESETS)
def plan(request: pytest.FixtureRequest):  # noqa: ANN201
    return expand(grids.SUBSWEEPS, grids.DEFAULTS, grids.PRESETS[request.param])


def _pipeline_keys(cfg: TrialConfig) -> dict[str, str | None]:
    """The keys the pipeline (and node trial) would build and read for this trial, by their own entry points."""
    if DATASETS.get(cfg.data.dataset).task == "node":
        return {"node_base": "node_base/" + cache_key(base_spec(cfg))}
    out: dict[str, str | None] = {"clean": None, "backdoor": None, "defended": None}
    if needs_clean_model(cfg):
        out["clean"] = "clean/" + cache_key(pipeline.clean_spec(cfg))
    if cfg.attack is not None:
        out["backdoor"] = "backdoor/" + cache_key(pipeline.backdoor_spec(cfg))
        if cfg.defense is not None:
            defense = DEFENSES.get(cfg.defense.name)(cfg.defense)
            if isinstance(defense, TrainingDefense):  # the instance's own resolved settings
                out["defended"] = "defended/" + cache_key(defense_spec(defense, pipeline.backdoor_spec(cfg)))
    return out


def test_driver_keys_equal_the_pipelines_for_every_trial(plan) -> None:  # noqa: ANN001
    assert plan.trials
    for t in plan.trials:
        cfg = TrialConfig.from_dict(copy.deepcopy(t.config))
        want = _pipeline_keys(cfg)
        got = {"clean": t.models.clean, "backdoor": t.backdoor_key, "defended": t.defended_key}
        if "node_base" in want:
            assert t.clean_key == want["node_base"], t.name
        else:
            assert got == want, t.name


def _identity(kind: str, cfg: TrialConfig) -> str:
    """What determines a model, spelled independently of artifact_keys (defaults resolved by hand)."""
    d, m, tr = cfg.data, cfg.model, cfg.train
    klass = GRAPH_MODELS.get(m.name)
    clean = (
        DATASETS.get(d.dataset).name.lower(),
        d.feature_mode,
        d.degree_cap,
        d.split_seed,
        d.train_ratio,
        m.name.lower(),
        m.hidden,
        m.num_layers,
        m.dropout,
        m.pooling or klass.default_pooling,
        (tr.epochs, tr.lr, tr.batch_size, tr.weight_decay, tr.step_size, tr.gamma, tr.seed),
    )
    if kind in ("clean", "node_base"):
        return json.dumps(clean, default=str)
    a = cfg.attack
    assert a is not None
    params = {**ATTACKS.get(a.name).param_defaults, **a.params}
    bd = (*clean, a.name, a.injection_ratio, a.trigger_size, a.target_label, a.seed, a.adaptive_alpha)
    bd = (*bd, sorted(params.items()))
    if kind == "backdoor":
        return json.dumps(bd, default=str)
    assert cfg.defense is not None
    dparams = {**DEFENSES.get(cfg.defense.name).param_defaults, **cfg.defense.params}
    return json.dumps((*bd, cfg.defense.name, sorted(dparams.items()), cfg.defense.seed), default=str)


def test_no_model_is_trained_twice_under_two_keys(plan) -> None:  # noqa: ANN001
    """Keys and model identities are in bijection: one key per model (nothing trained twice) and one model
    per key (no two different models share a cache entry)."""
    by_key: dict[str, set[str]] = {}
    by_identity: dict[str, set[str]] = {}
    for t in plan.trials:
        cfg = TrialConfig.from_dict(copy.deepcopy(t.config))
        for key in t.models.all():
            ident = _identity(key.split("/", 1)[0], cfg)
            by_key.setdefault(key, set()).add(ident)
            by_identity.setdefault(ident, set()).add(key)
    assert all(len(v) == 1 for v in by_key.values())
    assert all(len(v) == 1 for v in by_identity.values())
    counts = plan.distinct_models()
    assert sum(counts.values()) == len(by_key)


def test_keys_ignore_what_does_not_determine_the_model(tmp_path) -> None:  # noqa: ANN001
    base = TrialConfig.from_dict(
        {"data": {"dataset": "MUTAG"}, "attack": {"name": "sub_ba"}, "defense": {"name": "abl"}}
    )
    ref = trial_models(base)
    for change in (
        {"data.holding_rate": 0.1},
        {"data.mirror": str(tmp_path)},
        {"train.device": "cpu"},
        {"attack.params": {"density": 0.8}},  # Sub-BA's default, spelled out
        {"model.pooling": "sum"},  # GIN's default, spelled out
        {"defense.params": {"gamma": 0.5}},  # ABL's default, spelled out
    ):
        assert trial_models(base.with_overrides(change)) == ref, change
    for change in ({"train.seed": 1}, {"attack.injection_ratio": 0.1}, {"model.hidden": 32}):
        assert trial_models(base.with_overrides(change)).backdoor != ref.backdoor, change
    gc = base.with_overrides({"defense.name": "gcleaner", "defense.params": {}})
    assert trial_models(gc).defended is None and trial_models(gc).backdoor == ref.backdoor


def test_clean_floor_off_skips_the_clean_model_only_where_the_attack_needs_none() -> None:
    sub = TrialConfig.from_dict(
        {"data": {"dataset": "MUTAG"}, "attack": {"name": "sub_ba", "clean_floor": False}}
    )
    on = sub.with_overrides({"attack.clean_floor": True})
    assert trial_models(sub).clean is None and trial_models(on).clean is not None
    assert trial_models(sub).backdoor == trial_models(on).backdoor  # the flag is not part of the model
    for attack in ("exp_ba", "motif_ba"):  # they explain with the clean model: it is trained anyway
        assert trial_models(sub.with_overrides({"attack.name": attack})).clean is not None


def test_a_real_trial_builds_exactly_the_planned_models(tmp_path, mirror) -> None:  # noqa: ANN001
    """End to end on MUTAG (tiny): the folders the pipeline creates are the driver's keys; with the floor off
    no clean model is trained and the floor is missing with its reason, not 0."""
    raw = {
        "data": {"dataset": "MUTAG", "mirror": str(mirror)},
        "model": {"hidden": 8, "num_layers": 2},
        "train": {"epochs": 2, "batch_size": 64},
        "attack": {"name": "sub_ba", "clean_floor": False},
        "defense": {"name": "finetune", "params": {"epochs": 1}},
    }
    cache = ArtifactCache(tmp_path / "c")
    for floor in (False, True):
        raw["attack"]["clean_floor"] = floor
        cfg = TrialConfig.from_dict(copy.deepcopy(raw))
        res = pipeline.run_trial(cfg, cache)
        planned = trial_models(cfg)
        assert (cache.root / planned.backdoor).is_dir()
        if floor:
            assert (cache.root / planned.clean).is_dir() and 0.0 <= res.metrics["clean_asr"] <= 1.0
        else:
            assert planned.clean is None and not (cache.root / "clean").exists()
            assert "clean_asr" not in res.metrics and "clean_acc" not in res.metrics
            assert "attack.clean_floor=false" in res.artifacts["missing_metrics"]["clean_asr"]
    built = {
        f"{k.name}/{e.name}" for k in cache.root.iterdir() if k.is_dir() for e in k.iterdir() if e.is_dir()
    }
    assert built == {planned.clean, planned.backdoor}  # the backdoored model was built once, for both


def test_report_lists_the_missing_floor_with_its_reason() -> None:
    import pandas as pd

    from gnnsec.report.build import _floor_missing

    runs = pd.DataFrame({"params.attack.clean_floor": ["True", "False", "False"]})
    [(item, reason)] = _floor_missing(runs)
    assert "floor" in item and "2 of 3" in reason and "clean_floor=false" in reason
    assert _floor_missing(pd.DataFrame({"params.attack.clean_floor": ["True"]})) == []
    assert _floor_missing(pd.DataFrame({"params.data.dataset": ["AIDS"]})) == []
