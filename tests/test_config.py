"""Every bad input fails before any training, naming the field, the value and the valid choices."""

from __future__ import annotations

import json

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
