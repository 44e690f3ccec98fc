"""The ``UNLEARNERS`` registry (its own module so unlearner modules can register without cycles)."""

from __future__ import annotations

from gnnsec.registry import Registry

UNLEARNERS: Registry[type] = Registry("unlearner")
