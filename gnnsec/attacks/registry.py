"""The attack registry (kept apart from the attack modules so they can register without import cycles)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnnsec.registry import Registry

if TYPE_CHECKING:
    from gnnsec.attacks.base import Attack

ATTACKS: Registry[type[Attack]] = Registry("attack")
