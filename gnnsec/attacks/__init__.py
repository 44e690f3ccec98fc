"""Backdoor attacks on graph classification: one module per attack, all behind ``ATTACKS``."""

from gnnsec.attacks import exp_ba, gta, motif_ba, sub_ba  # noqa: F401  (registers)
from gnnsec.attacks.base import Attack, AttackContext, Trigger
from gnnsec.attacks.registry import ATTACKS

__all__ = ["ATTACKS", "Attack", "AttackContext", "Trigger"]
