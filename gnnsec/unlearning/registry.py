"""The ``UNLEARNERS`` registry, declared in :mod:`gnnsec.registry` (configs check names against it)."""

from __future__ import annotations

from gnnsec.registry import UNLEARNERS

__all__ = ["UNLEARNERS"]
