"""The attack registry (kept apart from the attack modules so they can register without import cycles)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnnsec.registry import ATTACKS as _ATTACKS
from gnnsec.registry import Registry

if TYPE_CHECKING:
    from gnnsec.attacks.base import Attack

ATTACKS: Registry[type[Attack]] = _ATTACKS  # declared in gnnsec.registry (config checks names)
