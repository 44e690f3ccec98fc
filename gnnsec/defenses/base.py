"""The post-training defense interface. A defender holds only the (backdoored) model and a small clean set.

The other two kinds (training-time defenses that train the model themselves, and inference-time wrappers)
live in :mod:`gnnsec.defenses.kinds`; every kind shares :class:`DefenseMethod` (name, code version,
validated ``params``).

``Defense.defend(model, clean)`` receives exactly those two things plus the defense's own settings: never the
trigger, the attack or the target label (GCleaner section 3, "Defender's capability"). :class:`DefenderData`
has no field that could carry them, and the pipeline builds it from the holding split alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import nn
from torch_geometric.data import Data

from gnnsec.config import DefenseConfig
from gnnsec.data.features import Featurizer
from gnnsec.errors import ConfigError


@dataclass(frozen=True)
class DefenderData:
    """The defender's clean, labelled graphs and how their nodes are featurized."""

    graphs: Sequence[Data]
    num_classes: int
    featurizer: Featurizer


@dataclass
class DefenseOutcome:
    """The defended model plus what the defense measured on its own data.

    ``recovered_injector`` (optional) injects the defense's recovered trigger into graphs; the evaluation
    code, which alone knows the real trigger, uses it for Recovery-ASR and trigger similarity (Table 4).
    """

    model: nn.Module
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    recovered_injector: Callable[[Sequence[Data]], list[Data]] | None = None


class DefenseMethod:
    """What every registered defense has, whatever its kind: a name, a code version and its settings.

    ``version`` goes into artifact-cache keys: bump it when a change alters what the defense produces.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1  # bump when the defense's behaviour changes (cache keys, tracked params)
    param_defaults: ClassVar[dict[str, Any]] = {}
    param_choices: ClassVar[dict[str, tuple[Any, ...]]] = {}

    def __init__(self, cfg: DefenseConfig) -> None:
        self.cfg = cfg
        self.params = {**self.param_defaults, **cfg.params}

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        for key, value in params.items():
            if key not in cls.param_defaults:
                raise ConfigError(
                    f"defense.params.{key}", value, sorted(cls.param_defaults) or "no parameters"
                )
            if key in cls.param_choices and value not in cls.param_choices[key]:
                raise ConfigError(f"defense.params.{key}", value, cls.param_choices[key])
            default = cls.param_defaults[key]
            numeric = isinstance(default, int | float) and not isinstance(default, bool)
            if numeric and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise ConfigError(f"defense.params.{key}", value, f"a number like {default}")


class Defense(DefenseMethod, ABC):
    """Post-training defense: ``defend(model, clean)`` on the trained (backdoored) model."""

    #: Optional progress hook set by a caller (e.g. the tuner's ASHA scheduler): a defense that trains in
    #: epochs calls :meth:`report_epoch` with its own per-epoch signals (defender-side data only).
    on_epoch: Callable[[int, dict[str, float]], None] | None = None

    def report_epoch(self, epoch: int, row: dict[str, float]) -> None:
        """Pass one epoch's signals to :attr:`on_epoch` (no-op when no hook is set)."""
        if self.on_epoch is not None:
            self.on_epoch(epoch, dict(row))

    @abstractmethod
    def defend(self, model: nn.Module, clean: DefenderData) -> DefenseOutcome:
        """Return a defended copy of ``model``; ``model`` itself is left unchanged."""
