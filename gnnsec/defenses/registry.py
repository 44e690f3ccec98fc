"""The defense registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnnsec.registry import DEFENSES as _DEFENSES
from gnnsec.registry import Registry

if TYPE_CHECKING:
    from gnnsec.defenses.base import Defense

DEFENSES: Registry[type[Defense]] = _DEFENSES  # declared in gnnsec.registry (config checks names)
