"""Every bad input fails before any training, naming the field, the value and the valid choices."""

from __future__ import annotations

import json
import shutil

import pytest

from gnnsec.config import AttackConfig, DataConfig, ModelConfig, TrainConfig, TrialConfig
from gnnsec.errors import ConfigError


@pytest.mark.parametrize(
    ("build", "field", "value", "hint"),
    [
        (lambda: DataConfig(dataset="NOPE"), "data.dataset", "NOPE", "AIDS"),
        (lambda: DataConfig(feature_mode="magic"), "data.feature_mode", "magic", "degree"),
        (lambda: DataConfig(holding_rate=1.5), "data.holding_rate", "1.5", "(0, 1)"),
        (lambda: DataConfig(train_ratio=0.0), "data.train_ratio", "0.0", "(0, 1)"),
        (lambda: ModelConfig(name="MLP"), "model.name", "MLP", "GIN"),
        (lambda: TrainConfig(epochs=0), "train.epochs", "0", "positive integer"),
        (lambda: TrainConfig(epochs=-3), "train.epochs", "-3", "positive integer"),
        (lambda: TrainConfig(lr=-1.0), "train.lr", "-1.0", "positive"),
        (lambda: AttackConfig(name="badnets"), "attack.name", "badnets", "sub_ba"),
        (lambda: AttackConfig(injection_ratio=1.2), "attack.injection_ratio", "1.2", "(0, 1)"),
        (lambda: AttackConfig(trigger_size=0), "attack.trigger_size", "0", "(0, 1)"),
        (lambda: AttackConfig(params={"densty": 0.5}), "attack.params.densty", "0.5", "density"),
        (lambda: DataConfig(mirror="/does/not/exist"), "data.mirror", "/does/not/exist", "existing folder"),
    ],
)
def test_bad_values_name_field_value_and_choices(build, field: str, value: str, hint: str) -> None:
    with pytest.raises(ConfigError) as err:
        build()
    message = str(err.value)
    assert field in message and value in message and hint in message


def test_target_label_must_exist_in_dataset() -> None:
    with pytest.raises(ConfigError, match="attack.target_label"):
        TrialConfig.from_dict({"data": {"dataset": "AIDS"}, "attack": {"name": "sub_ba", "target_label": 5}})


def test_unknown_section_and_field_are_rejected() -> None:
    with pytest.raises(ConfigError, match="config"):
        TrialConfig.from_dict({"optimiser": {}})
    with pytest.raises(ConfigError, match="train.epoch"):
        TrialConfig.from_dict({"train": {"epoch": 3}})


def test_yaml_and_json_round_trip(tmp_path) -> None:
    cfg = TrialConfig.from_dict({"data": {"dataset": "MUTAG"}, "attack": {"name": "sub_ba"}})
    path = tmp_path / "trial.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert TrialConfig.from_file(path) == cfg
    ypath = tmp_path / "trial.yaml"
    ypath.write_text("data:\n  dataset: mutag\ntrain:\n  epochs: 3\n")
    loaded = TrialConfig.from_file(ypath)
    assert loaded.data.dataset == "MUTAG" and loaded.train.epochs == 3


def test_overrides_are_validated() -> None:
    cfg = TrialConfig()
    assert cfg.with_overrides({"train.epochs": 7}).train.epochs == 7
    with pytest.raises(ConfigError, match="train.epochs"):
        cfg.with_overrides({"train.epochs": 0})


def test_a_seeded_cell_sets_every_seed_and_validates_its_overrides() -> None:
    cfg = TrialConfig.seeded_cell("MUTAG", "gta", 3, defense="gcleaner", train__epochs=4, train__lr=None)
    seeds = (cfg.data.split_seed, cfg.train.seed, cfg.attack.seed, cfg.defense.seed)
    assert seeds == (3, 3, 3, 3)
    assert (cfg.data.dataset, cfg.attack.name, cfg.defense.name, cfg.train.epochs) == (
        "MUTAG",
        "gta",
        "gcleaner",
        4,
    )
    assert cfg.train.lr == TrialConfig().train.lr  # None means "the default"
    with pytest.raises(ConfigError, match="attack.name"):
        TrialConfig.seeded_cell("MUTAG", "no_such_attack", 0)


def test_missing_data_fails_before_training(tmp_path, monkeypatch) -> None:
    """A mirror without the dataset: a clear error naming the dataset and the folder, no training."""
    from gnnsec.data import load_graph_dataset
    from gnnsec.errors import DataUnavailableError

    empty = tmp_path / "mirror"
    empty.mkdir()
    cfg = DataConfig(dataset="MUTAG", mirror=str(empty), root=str(tmp_path / "root"))
    with pytest.raises(DataUnavailableError) as err:
        load_graph_dataset(cfg)
    assert (
        "MUTAG" in str(err.value) and str(empty) in str(err.value) and "GNNSEC_DATA_MIRROR" in str(err.value)
    )


# ---- values parse like a person writes them (issue 9.3) ----------------------------------------------
def test_scientific_notation_is_a_number_in_set_files_and_strings(tmp_path) -> None:
    import argparse

    from gnnsec.cli import _add_trial_options, build_config
    from gnnsec.config import parse_value

    assert parse_value("1e-3") == 0.001 and parse_value("5E2") == 500.0 and parse_value("gta") == "gta"
    p = argparse.ArgumentParser()
    _add_trial_options(p, attack=True)
    args = p.parse_args(["--set", "train.lr=1e-3", "--set", "train.weight_decay=5e-4"])
    cfg = build_config(args)
    assert cfg.train.lr == 0.001 and cfg.train.weight_decay == 0.0005
    path = tmp_path / "t.yaml"
    path.write_text("train:\n  lr: 1e-3\n")
    assert TrialConfig.from_file(path).train.lr == 0.001
    assert TrainConfig(lr="1e-3").lr == 0.001  # a numeric string from any source is a number
    import numpy as np

    tc = TrainConfig(seed=np.int64(3), lr=np.float32(0.5))  # what a search space may hand over
    assert tc.seed == 3 and type(tc.seed) is int and tc.lr == 0.5


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("train", "weight_decay", "abc"),
        ("train", "gamma", "x"),
        ("train", "gamma", [0.5]),
        ("model", "dropout", "high"),
        ("attack", "adaptive_alpha", "lots"),
        ("attack", "injection_ratio", True),
        ("train", "seed", -1),
        ("data", "split_seed", -3),
        ("attack", "seed", -2),
        ("defense", "seed", -1),
        ("train", "seed", 1.5),
        ("train", "lr", float("nan")),
        ("train", "lr", float("inf")),
    ],
)
def test_every_numeric_field_is_checked_with_a_named_error(section: str, field: str, value) -> None:
    raw = {"attack": {"name": "sub_ba"}, "defense": {"name": "finetune"}}
    raw.setdefault(section, {})[field] = value
    with pytest.raises(ConfigError) as err:
        TrialConfig.from_dict(raw)
    assert f"{section}.{field}" in str(err.value)


def test_holding_rate_leaving_no_evaluation_graphs_fails_at_config_time() -> None:
    # MUTAG: 188 graphs, 98% train -> 4 test graphs; 1.9% holding -> 4 held out, none left to evaluate on
    with pytest.raises(ConfigError, match="data.holding_rate.*evaluation"):
        DataConfig(dataset="MUTAG", train_ratio=0.98, holding_rate=0.019)
    DataConfig(dataset="MUTAG", train_ratio=0.98, holding_rate=0.015)  # 3 held out, 1 evaluated


def test_split_sizes_match_the_real_split() -> None:
    import numpy as np

    from gnnsec.config import split_sizes
    from gnnsec.data.splits import split_graphs

    labels = np.array([0, 1] * 94)
    s = split_graphs(labels, 0, 0.8, 0.03)
    assert (len(s.train), len(s.holding), len(s.test)) == split_sizes(188, 0.8, 0.03)
    with pytest.raises(ConfigError, match="data.holding_rate"):
        split_graphs(labels, 0, 0.98, 0.019)


def test_corrupt_processed_file_is_reported_and_rebuilt(mirror, tmp_path, caplog) -> None:
    from gnnsec.data import load_graph_dataset

    cfg = DataConfig(dataset="MUTAG", root=str(tmp_path / "root"))
    assert len(load_graph_dataset(cfg).graphs) == 188
    processed = tmp_path / "root" / "TUDataset" / "MUTAG" / "processed"
    data_pt = processed / "data.pt"
    data_pt.write_bytes(data_pt.read_bytes()[:100])
    shutil.rmtree(processed.parent / "featurized")  # the featurized pack would spare PyG's processed file
    with caplog.at_level("WARNING", logger="gnnsec.data.loading"):
        assert len(load_graph_dataset(cfg).graphs) == 188
    assert any("corrupt" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)


def test_overriding_the_dataset_applies_its_default_epochs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A default config resolves epochs for AIDS (100); switching it to a dataset with another default (here
    COLLAB given 20, as it had until its GIN was found underfit) must give that default (the benchmarks build
    every trial as ``TrialConfig().with_overrides(...)``), while an explicit value stays."""
    import dataclasses

    from gnnsec.data.registry import DATASETS

    assert DATASETS.get("COLLAB").default_epochs == 100
    monkeypatch.setitem(
        DATASETS._items, "collab", dataclasses.replace(DATASETS.get("COLLAB"), default_epochs=20)
    )
    collab = TrialConfig().with_overrides({"data.dataset": "COLLAB"})
    assert collab.train.epochs == 20
    assert collab.with_overrides({"data.dataset": "AIDS"}).train.epochs == 100
    assert collab.with_overrides({"train.seed": 3}).train.epochs == 20
    explicit = TrialConfig().with_overrides({"train.epochs": 7})
    assert explicit.with_overrides({"data.dataset": "COLLAB"}).train.epochs == 7
    assert TrialConfig().with_overrides({"data.dataset": "COLLAB", "train.epochs": 100}).train.epochs == 100
