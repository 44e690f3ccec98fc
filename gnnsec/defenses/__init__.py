"""Defenses: the three kinds (post-training, training-time, inference-time wrappers) behind ``DEFENSES``."""

from gnnsec.defenses import abl, detectors, finetune, gcleaner, prune, smoothing  # noqa: F401  (registers)
from gnnsec.defenses.base import DefenderData, Defense, DefenseMethod, DefenseOutcome
from gnnsec.defenses.kinds import (
    InferenceWrapper,
    TrainingDefense,
    TrainingOutcome,
    TrainingRecipe,
    plain_graphs,
)
from gnnsec.defenses.registry import DEFENSES

__all__ = [
    "DEFENSES",
    "DefenderData",
    "Defense",
    "DefenseMethod",
    "DefenseOutcome",
    "InferenceWrapper",
    "TrainingDefense",
    "TrainingOutcome",
    "TrainingRecipe",
    "plain_graphs",
]
