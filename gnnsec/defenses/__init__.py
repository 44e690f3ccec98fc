"""Defenses: base + one module per defense, behind ``DEFENSES``."""

from gnnsec.defenses import finetune, gcleaner  # noqa: F401  (registers)
from gnnsec.defenses.base import DefenderData, Defense, DefenseOutcome
from gnnsec.defenses.registry import DEFENSES

__all__ = ["DEFENSES", "DefenderData", "Defense", "DefenseOutcome"]
