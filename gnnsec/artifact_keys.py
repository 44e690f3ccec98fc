"""The one source of artifact-cache keys of the models a trial trains: clean, backdoored, training-time
defended, node base model. Used by the pipeline (to build and find them) and by the sweep driver (to plan,
order and count them), so "train once, share everywhere" holds by construction.

A key is computed from the :class:`~gnnsec.config.TrialConfig` alone (no data is loaded), and it holds
exactly what determines the model, with every default resolved so that two spellings of the same setting
share one model:

- clean: the dataset (registered name and its ``version``), feature mode, degree cap (``None`` = the
  dataset's own maximum degree, fixed by the dataset and its version), split seed and train ratio (not the
  holding rate: the holding set is drawn from the test split), the backbone (pooling resolved to the
  backbone's default), the training settings (not the device) and the code versions;
- backdoored: the clean spec plus the attack (its ``params`` merged with the attack's defaults; not
  ``clean_floor``, which only decides whether the clean model is evaluated, nor ``clean_concurrent``,
  which only decides where it is trained) and the attack's code version;
- defended: the backdoored spec plus the training-time defense's name, version, full settings and seed;
- node base: dataset, split seed, backbone and training settings (full-batch: not the batch size).

Which models a trial needs: :func:`trial_models` (a post-training defense trains none of its own; a trial
with ``attack.clean_floor = False`` trains no clean model unless its attack needs one, Exp-BA/Motif-BA).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from gnnsec.cache import cache_key, code_versions
from gnnsec.config import TrialConfig
from gnnsec.registry import ATTACKS, DATASETS, DEFENSES, GRAPH_MODELS

# TrainingDefense lives in the defenses layer, below this one (import rule).
NOT_IN_KEYS_ATTACK = ("clean_floor", "clean_concurrent")


def _model(cfg: TrialConfig) -> dict[str, Any]:
    model = asdict(cfg.model)
    klass = GRAPH_MODELS.get(cfg.model.name)
    model["name"] = klass.name if hasattr(klass, "name") else cfg.model.name
    model["pooling"] = cfg.model.pooling or getattr(klass, "default_pooling", None)
    return model


def clean_spec(cfg: TrialConfig) -> dict[str, Any]:
    """What determines the never-poisoned model (cache kind ``clean``)."""
    d = cfg.data
    ds = DATASETS.get(d.dataset)
    return {
        "dataset": ds.name,
        "dataset_version": ds.version,
        "feature_mode": d.feature_mode,
        "degree_cap": d.degree_cap,
        "split_seed": d.split_seed,
        "train_ratio": d.train_ratio,
        "model": _model(cfg),
        "train": {k: v for k, v in asdict(cfg.train).items() if k != "device"},
        "code": code_versions(model=GRAPH_MODELS.get(cfg.model.name)),
    }


def attack_settings(cfg: TrialConfig) -> dict[str, Any]:
    """The attack's settings as they determine the backdoored model (own params with defaults)."""
    assert cfg.attack is not None
    klass = ATTACKS.get(cfg.attack.name)
    attack = {k: v for k, v in asdict(cfg.attack).items() if k not in NOT_IN_KEYS_ATTACK}
    attack["params"] = dict(sorted({**klass.param_defaults, **cfg.attack.params}.items()))
    return attack


def backdoor_spec(cfg: TrialConfig) -> dict[str, Any]:
    """What determines the backdoored model, its trigger and poisoned set (cache kind ``backdoor``)."""
    assert cfg.attack is not None
    code = code_versions(model=GRAPH_MODELS.get(cfg.model.name), attack=ATTACKS.get(cfg.attack.name))
    return {**clean_spec(cfg), "attack": attack_settings(cfg), "code": code}


def defended_spec(cfg: TrialConfig) -> dict[str, Any]:
    """What determines a training-time defense's own model (cache kind ``defended``)."""
    assert cfg.defense is not None
    klass = DEFENSES.get(cfg.defense.name)
    params = {**klass.param_defaults, **cfg.defense.params}
    return {**backdoor_spec(cfg), "training_defense": training_defense(klass, params, cfg.defense.seed)}


def training_defense(klass: Any, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """The defense's part of a ``defended`` key: name, code version, full settings (defaults explicit), seed."""
    return {
        "name": klass.name,
        "version": int(klass.version),
        "params": dict(sorted(params.items())),
        "seed": seed,
    }


def node_base_spec(cfg: TrialConfig) -> dict[str, Any]:
    """What determines the node-level base model of an unlearning trial (cache kind ``node_base``)."""
    return {
        "task": "node",
        "dataset": DATASETS.get(cfg.data.dataset).name,
        "split_seed": cfg.data.split_seed,
        "model": asdict(cfg.model),
        "train": {k: v for k, v in asdict(cfg.train).items() if k not in ("device", "batch_size")},
    }


def is_training_defense(name: str) -> bool:
    from gnnsec.defenses import TrainingDefense  # noqa: PLC0415  (registers the defenses)

    return issubclass(DEFENSES.get(name), TrainingDefense)


def needs_clean_model(cfg: TrialConfig) -> bool:
    """Whether the trial trains (or loads) the clean model: for the clean-model floor (``attack.clean_floor``,
    default on), for a trial without attack, or because the attack explains with it (Exp-BA, Motif-BA)."""
    if cfg.attack is None:
        return True
    return bool(cfg.attack.clean_floor) or attack_uses_clean_model(cfg)


def attack_uses_clean_model(cfg: TrialConfig) -> bool:
    """Whether the attack poisons with the clean model (Exp-BA, Motif-BA explain with it)."""
    return cfg.attack is not None and bool(getattr(ATTACKS.get(cfg.attack.name), "uses_clean_model", False))


@dataclass(frozen=True)
class TrialModels:
    """Cache keys (``kind/key``) of the models a trial needs; ``None`` where it needs none of that kind."""

    clean: str | None
    backdoor: str | None
    defended: str | None
    node_base: str | None = None

    def all(self) -> list[str]:
        return [k for k in (self.clean, self.backdoor, self.defended, self.node_base) if k]


def trial_models(cfg: TrialConfig) -> TrialModels:
    """The cache keys of every model ``cfg`` trains, prefixed with their kind (``clean/<key>``)."""
    if DATASETS.get(cfg.data.dataset).task == "node":
        return TrialModels(None, None, None, "node_base/" + cache_key(node_base_spec(cfg)))
    clean = "clean/" + cache_key(clean_spec(cfg)) if needs_clean_model(cfg) else None
    if cfg.attack is None:
        return TrialModels(clean, None, None)
    backdoor = "backdoor/" + cache_key(backdoor_spec(cfg))
    defended = None
    if cfg.defense is not None and is_training_defense(cfg.defense.name):
        defended = "defended/" + cache_key(defended_spec(cfg))
    return TrialModels(clean, backdoor, defended)
