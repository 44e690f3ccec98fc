"""The one registry mechanism every family (datasets, models, attacks, defenses, explainers, ...) uses.

A new method is one module plus one ``@REGISTRY.register("name")`` line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from gnnsec.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named mapping from method names (case-insensitive) to factories or specs."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._display: dict[str, str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        key = name.lower()

        def decorator(obj: T) -> T:
            if key in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[key] = obj
            self._display[key] = name
            return obj

        return decorator

    def add(self, name: str, obj: T) -> T:
        return self.register(name)(obj)

    def get(self, name: str, field: str | None = None) -> T:
        key = str(name).lower()
        if key not in self._items:
            raise ConfigError(field or self.kind, name, self.names())
        return self._items[key]

    def canonical(self, name: str, field: str | None = None) -> str:
        """The registered spelling of ``name`` (raises ConfigError when unknown)."""
        self.get(name, field)
        return self._display[str(name).lower()]

    def __contains__(self, name: object) -> bool:
        return str(name).lower() in self._items

    def names(self) -> list[str]:
        return sorted(self._display.values(), key=str.lower)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
