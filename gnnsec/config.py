"""Typed, validated configuration of a trial.

Every config is a dataclass whose ``validate()`` runs in ``__post_init__``, so a bad value fails when the
config is built, before any data is loaded or any model is trained. Errors name the field, the value and
the valid choices (see :class:`gnnsec.errors.ConfigError`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gnnsec.errors import ConfigError
from gnnsec.registry import ATTACKS, DATASETS, DEFENSES, GRAPH_MODELS, UNLEARNERS

FEATURE_MODES = ("degree", "native")
DEVICES = ("auto", "cpu", "cuda")
POOLINGS = ("mean", "sum", "max")
DEFAULT_EPOCHS = 100  # when neither the config nor a dataset says otherwise


# YAML 1.2 floats: PyYAML implements YAML 1.1, where ``1e-3`` (no dot) is a string.
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads numbers like a person writes them (``1e-3``, ``5E2``)."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """Parse YAML text (config files, ``--set`` values, sweep overrides) with YAML 1.2 number rules."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass)


def parse_value(text: str) -> Any:
    """One ``--set KEY=VALUE`` value: ``1e-3`` -> 0.001, ``3`` -> 3, ``gta`` -> "gta", ``[1, 2]`` -> list."""
    return load_yaml(text)


def check_number(
    name: str,
    value: Any,
    *,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> int | float:
    """``value`` as a number within the bounds, or a ConfigError naming the field, value and valid range.

    Numeric strings (``"1e-3"``) are read as numbers; booleans and other types are rejected.
    """
    if isinstance(value, str) and _FLOAT.match(value.strip()):
        value = float(value) if not integer else (int(float(value)) if float(value).is_integer() else value)
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    kind = "an integer" if integer else "a number"
    if low is not None and high is not None:
        valid = f"{kind} in {lo}{low:g}, {high:g}{hi}"
    elif low is not None:
        valid = f"{kind} {'>' if low_open else '>='} {low:g}"
    else:
        valid = kind
    if low == 0 and low_open and high is None:
        valid = "a positive " + ("integer" if integer else "number")
    kind_ok = isinstance(value, numbers.Integral if integer else numbers.Real)  # numpy scalars too
    if isinstance(value, bool) or not kind_ok or not math.isfinite(float(value)):  # NaN, inf fail too
        raise ConfigError(name, value, valid)
    value = int(value) if integer else (value if isinstance(value, int) else float(value))
    if low is not None and (value < low or (low_open and value == low)):
        raise ConfigError(name, value, valid)
    if high is not None and (value > high or (high_open and value == high)):
        raise ConfigError(name, value, valid)
    return value


def _open_unit(name: str, value: Any) -> float:
    return check_number(name, value, low=0.0, high=1.0, low_open=True, high_open=True)


def _positive(name: str, value: Any, integer: bool = True) -> int | float:
    return check_number(name, value, integer=integer, low=0, low_open=True)


def _seed(name: str, value: Any) -> int:
    return int(check_number(name, value, integer=True, low=0))


def _choice(name: str, value: object, choices: tuple[str, ...] | list[str]) -> None:
    if value not in choices:
        raise ConfigError(name, value, choices)


def split_sizes(n: int, train_ratio: float, holding_rate: float) -> tuple[int, int, int]:
    """(train, holding, evaluation) graph counts of a split of ``n`` graphs (used by ``data.splits``)."""
    n_train = int(np.floor(train_ratio * n))
    n_hold = max(2, int(round(holding_rate * n)))
    return n_train, n_hold, n - n_train - n_hold


def default_cache_dir() -> Path:
    """Root of gnnsec's caches: ``$GNNSEC_CACHE_DIR`` or ``~/.cache/gnnsec``."""
    return Path(os.environ.get("GNNSEC_CACHE_DIR", Path.home() / ".cache" / "gnnsec")).expanduser()


@dataclass
class DataConfig:
    """Which dataset, how its nodes are featurized and how it is split (GCleaner 5.1: 8:2, 3% holding)."""

    dataset: str = "AIDS"
    feature_mode: str = "degree"
    degree_cap: int | None = None  # None: the dataset's own max degree (shared by attacker and defender)
    split_seed: int = 0
    train_ratio: float = 0.8
    holding_rate: float = 0.03
    mirror: str | None = None  # None: $GNNSEC_DATA_MIRROR
    root: str | None = None  # None: <cache dir>/data

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        spec = DATASETS.get(self.dataset, "data.dataset")
        self.dataset = spec.name
        _choice("data.feature_mode", self.feature_mode, FEATURE_MODES)
        if self.degree_cap is not None:
            self.degree_cap = int(_positive("data.degree_cap", self.degree_cap))
        self.split_seed = _seed("data.split_seed", self.split_seed)
        self.train_ratio = _open_unit("data.train_ratio", self.train_ratio)
        self.holding_rate = _open_unit("data.holding_rate", self.holding_rate)
        if self.holding_rate >= 1.0 - self.train_ratio:
            raise ConfigError(
                "data.holding_rate", self.holding_rate, f"below the test fraction {1 - self.train_ratio:.2f}"
            )
        n = getattr(spec, "num_graphs", None)
        if n and split_sizes(n, self.train_ratio, self.holding_rate)[2] < 1:
            _, n_hold, _ = split_sizes(n, self.train_ratio, self.holding_rate)
            raise ConfigError(
                "data.holding_rate",
                self.holding_rate,
                f"a rate leaving evaluation graphs: {self.dataset} has {n} graphs, "
                f"{n - int(np.floor(self.train_ratio * n))} in the test split, {n_hold} would be held out",
            )
        if self.mirror is not None and not Path(self.mirror).is_dir():
            raise ConfigError("data.mirror", self.mirror, "an existing folder with PyG raw/ layouts")

    @property
    def mirror_path(self) -> Path | None:
        value = self.mirror or os.environ.get("GNNSEC_DATA_MIRROR")
        return Path(value).expanduser().resolve() if value else None

    @property
    def root_path(self) -> Path:
        return Path(self.root).expanduser() if self.root else default_cache_dir() / "data"


@dataclass
class ModelConfig:
    """Backbone settings. Defaults: 3 layers of width 64, mean readout (GIN: sum, as in its paper)."""

    name: str = "GIN"
    hidden: int = 64
    num_layers: int = 3
    dropout: float = 0.0
    pooling: str | None = None  # None: the backbone's own default

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        self.name = GRAPH_MODELS.canonical(self.name, "model.name")
        self.hidden = int(_positive("model.hidden", self.hidden))
        self.num_layers = int(_positive("model.num_layers", self.num_layers))
        self.dropout = float(check_number("model.dropout", self.dropout, low=0.0, high=1.0, high_open=True))
        if self.pooling is not None:
            _choice("model.pooling", self.pooling, POOLINGS)


@dataclass
class TrainConfig:
    """Adam with a step learning-rate schedule; seeded so the same config gives the same metrics on CPU.

    ``epochs=None`` means the dataset's documented default (``DatasetSpec.default_epochs``, 100 for every dataset);
    :class:`TrialConfig` resolves it, so a built trial config always holds the concrete number.
    """

    epochs: int | None = None
    lr: float = 0.01
    batch_size: int = 32
    weight_decay: float = 0.0
    step_size: int = 50
    gamma: float = 0.5
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.epochs is not None:
            self.epochs = int(_positive("train.epochs", self.epochs))
        self.lr = float(_positive("train.lr", self.lr, integer=False))
        self.batch_size = int(_positive("train.batch_size", self.batch_size))
        self.weight_decay = float(check_number("train.weight_decay", self.weight_decay, low=0.0))
        self.step_size = int(_positive("train.step_size", self.step_size))
        self.gamma = float(check_number("train.gamma", self.gamma, low=0.0, high=1.0, low_open=True))
        self.seed = _seed("train.seed", self.seed)
        _choice("train.device", self.device, DEVICES)


@dataclass
class AttackConfig:
    """Common attack parameters (GCleaner 5.1): injection ratio φ, trigger size t, target label, seed.

    ``params`` holds an attack's own settings (e.g. ``{"density": 0.8}`` for Sub-BA); each attack
    validates its own keys. ``clean_floor``: evaluate the clean model on the triggered test graphs (the
    clean-model floor of the ASR, ``clean_*`` metrics); ``False`` skips training the clean model where the
    attack does not need it (not Exp-BA/Motif-BA), and the floor is reported missing with the reason.
    ``clean_concurrent``: train that clean model in a child process while the backdoored one trains
    (:mod:`gnnsec.pipeline_clean`; same results; give the trial 2 CPUs).
    """

    name: str = "sub_ba"
    injection_ratio: float = 0.05
    trigger_size: float = 0.2
    target_label: int = 1
    seed: int = 0
    adaptive_alpha: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    clean_floor: bool = True
    clean_concurrent: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        self.name = ATTACKS.canonical(self.name, "attack.name")
        if not isinstance(self.clean_floor, bool):
            raise ConfigError("attack.clean_floor", self.clean_floor, [True, False])
        if not isinstance(self.clean_concurrent, bool):
            raise ConfigError("attack.clean_concurrent", self.clean_concurrent, [True, False])
        self.injection_ratio = float(_open_unit("attack.injection_ratio", self.injection_ratio))
        self.trigger_size = float(_open_unit("attack.trigger_size", self.trigger_size))
        self.target_label = int(check_number("attack.target_label", self.target_label, integer=True, low=0))
        self.seed = _seed("attack.seed", self.seed)
        self.adaptive_alpha = float(check_number("attack.adaptive_alpha", self.adaptive_alpha, low=0.0))
        if not isinstance(self.params, dict):
            raise ConfigError("attack.params", self.params, "a mapping of the attack's own settings")
        ATTACKS.get(self.name).validate_params(self.params)


@dataclass
class DefenseConfig:
    """A defense by name plus its own settings (each defense validates its ``params``).

    ``auxiliary_dataset``: defend with clean graphs of another dataset instead of the holding split
    (GCleaner Table 5, e.g. NCI1 -> AIDS); as many graphs as the holding split would have.
    """

    name: str = "gcleaner"
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    auxiliary_dataset: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        self.name = DEFENSES.canonical(self.name, "defense.name")
        if not isinstance(self.params, dict):
            raise ConfigError("defense.params", self.params, "a mapping of the defense's own settings")
        DEFENSES.get(self.name).validate_params(self.params)
        self.seed = _seed("defense.seed", self.seed)
        if self.auxiliary_dataset is not None:
            graph_sets = [n for n in DATASETS.names() if DATASETS.get(n).task == "graph"]
            self.auxiliary_dataset = DATASETS.get(self.auxiliary_dataset, "defense.auxiliary_dataset").name
            if self.auxiliary_dataset not in graph_sets:
                raise ConfigError("defense.auxiliary_dataset", self.auxiliary_dataset, graph_sets)


@dataclass
class TrialConfig:
    """Everything that determines one trial: data, backbone, training, and optionally attack and defense."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    attack: AttackConfig | None = None
    defense: DefenseConfig | None = None
    unlearning: UnlearningConfig | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.train.epochs is None:
            self.train.epochs = DATASETS.get(self.data.dataset).default_epochs
            self._epochs_resolved = True  # from the dataset's default: with_overrides re-resolves it
        _validate_task(self)
        if self.defense is not None and self.attack is None:
            raise ConfigError("defense", self.defense.name, "a defense needs an attack (set attack.name)")
        aux = self.defense.auxiliary_dataset if self.defense is not None else None
        if aux is not None and aux == self.data.dataset:
            raise ConfigError("defense.auxiliary_dataset", aux, f"a dataset other than {self.data.dataset}")
        if self.attack is not None:
            spec = DATASETS.get(self.data.dataset)
            if spec.num_classes is not None and self.attack.target_label >= spec.num_classes:
                raise ConfigError(
                    "attack.target_label",
                    self.attack.target_label,
                    f"a class of {self.data.dataset}: 0..{spec.num_classes - 1}",
                )

    # ---- (de)serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrialConfig:
        raw = dict(raw)
        sections = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
        optional = {"attack": AttackConfig, "defense": DefenseConfig, "unlearning": UnlearningConfig}
        unknown = set(raw) - set(sections) - set(optional)
        if unknown:
            raise ConfigError("config", sorted(unknown)[0], list(sections) + list(optional))
        kwargs: dict[str, Any] = {}
        for key, klass in {**sections, **optional}.items():
            value = raw.get(key)
            if value is None:
                continue
            kwargs[key] = value if isinstance(value, klass) else _build(klass, key, value)
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: str | Path) -> TrialConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError("config file", str(path), "an existing YAML or JSON file")
        text = path.read_text()
        raw = json.loads(text) if path.suffix == ".json" else load_yaml(text)
        return cls.from_dict(raw or {})

    def with_overrides(self, flat: dict[str, Any]) -> TrialConfig:
        """A copy with dotted overrides, e.g. ``{"train.epochs": 5, "attack.name": "gta"}``."""
        raw = self.to_dict()
        if (  # epochs that only came from the old dataset's default follow the new dataset's default
            "train.epochs" not in flat
            and getattr(self, "_epochs_resolved", False)
            and self.train.epochs == DATASETS.get(self.data.dataset).default_epochs
        ):
            raw["train"]["epochs"] = None
        for dotted, value in flat.items():
            section, _, key = dotted.partition(".")
            if section not in ("data", "model", "train", "attack", "defense", "unlearning") or not key:
                raise ConfigError("override", dotted, "section.field, e.g. train.epochs")
            if raw.get(section) is None:
                raw[section] = {}
            raw[section][key] = value
        return TrialConfig.from_dict(raw)

    @classmethod
    def seeded_cell(
        cls,
        dataset: str,
        attack: str,
        seed: int,
        *,
        model: str = "GIN",
        defense: str | None = None,
        **overrides: Any,
    ) -> TrialConfig:
        """One cell of a results table: every seed (split, training, attack, defense) set to ``seed``;
        ``overrides`` are further dotted settings with dots written as ``__`` (``train__epochs=5``)."""
        flat: dict[str, Any] = {
            "data.dataset": dataset,
            "data.split_seed": seed,
            "model.name": model,
            "train.seed": seed,
            "attack.name": attack,
            "attack.seed": seed,
        }
        if defense is not None:
            flat.update({"defense.name": defense, "defense.seed": seed})
        flat.update({k.replace("__", "."): v for k, v in overrides.items() if v is not None})
        return cls().with_overrides(flat)


def _build(klass: type, section: str, value: dict[str, Any]) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(section, value, "a mapping of fields")
    names = {f.name for f in fields(klass)}
    unknown = set(value) - names
    if unknown:
        raise ConfigError(f"{section}.{sorted(unknown)[0]}", value[sorted(unknown)[0]], sorted(names))
    return klass(**value)


def replace(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that re-validates."""
    return dataclasses.replace(cfg, **changes)


# ---- unlearning (Forget-and-Explain, node classification) ----------------------------------------------
@dataclass
class UnlearningConfig:
    """Node unlearning (Forget and Explain, section 4): which unlearner, how much to forget, verifier settings.

    ``forget_ratio``: share of all nodes sampled uniformly without replacement (paper: 5%); ``seed`` draws
    the forget set (None: ``train.seed``), so it is identical across unlearners and backbones for a seed.
    ``k_hops``: radius of the ego networks of the GED proxy graph (paper: 2); ``tree_depth``: depth of the
    GRS decision-tree surrogate (paper: 3). ``params``: the unlearner's own settings, validated by it.
    """

    name: str = "retrain"
    forget_ratio: float = 0.05
    seed: int | None = None
    k_hops: int = 2
    tree_depth: int = 3
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        self.name = UNLEARNERS.canonical(self.name, "unlearning.name")
        _open_unit("unlearning.forget_ratio", self.forget_ratio)
        if self.seed is not None:
            _seed("unlearning.seed", self.seed)
        _positive("unlearning.k_hops", self.k_hops)
        _positive("unlearning.tree_depth", self.tree_depth)
        UNLEARNERS.get(self.name).validate_params(self.params)


def _validate_task(cfg: TrialConfig) -> None:
    """Node datasets run the unlearning trial, graph datasets the backdoor trial: sections must match."""
    task = DATASETS.get(cfg.data.dataset).task
    node_sets = [n for n in DATASETS.names() if DATASETS.get(n).task == "node"]
    if cfg.unlearning is not None and task != "node":
        raise ConfigError("data.dataset", cfg.data.dataset, f"a node-classification dataset: {node_sets}")
    if task == "node" and (cfg.attack is not None or cfg.defense is not None):
        section = "attack" if cfg.attack is not None else "defense"
        raise ConfigError(section, getattr(cfg, section).name, f"none ({cfg.data.dataset} is a node dataset)")
