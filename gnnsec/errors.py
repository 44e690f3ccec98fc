"""Exceptions with messages that name the field, the value and the valid choices."""

from __future__ import annotations

from collections.abc import Iterable


class GnnsecError(Exception):
    """Base class of every error gnnsec raises on purpose."""


class ConfigError(GnnsecError, ValueError):
    """A configuration value is invalid; raised before any training starts."""

    def __init__(self, field: str, value: object, valid: Iterable[object] | str | None = None) -> None:
        self.field, self.value = field, value
        if valid is None:
            hint = ""
        elif isinstance(valid, str):
            hint = f"; valid: {valid}"
        else:
            hint = "; valid choices: " + ", ".join(str(v) for v in valid)
        super().__init__(f"invalid {field}={value!r}{hint}")


class DataUnavailableError(GnnsecError, FileNotFoundError):
    """A dataset's raw files are neither in the mirror nor downloadable."""
