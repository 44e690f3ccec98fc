"""The one registry mechanism every family (datasets, models, attacks, defenses, explainers, ...) uses.

A new method is one module plus one ``@REGISTRY.register("name")`` line.

The registries that configs validate names against (datasets, graph models, attacks, defenses) are declared
here, in the lowest layer, each with the package that fills it (its *provider*, like a packaging entry
point). ``gnnsec.config`` imports only this module; the provider is imported on the first lookup, so the
config layer never imports a higher layer's code while names are still checked when a config is built.
The families re-export their registry (``from gnnsec.attacks import ATTACKS`` keeps working).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from gnnsec.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named mapping from method names (case-insensitive) to factories or specs."""

    def __init__(self, kind: str, provider: str | None = None) -> None:
        self.kind = kind
        self.provider = provider  # module that registers the methods; imported on first lookup
        self._loaded = provider is None
        self._items: dict[str, T] = {}
        self._display: dict[str, str] = {}

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # before the import: the provider's own lookups must not recurse
            importlib.import_module(str(self.provider))

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
        self._load()
        key = str(name).lower()
        if key not in self._items:
            raise ConfigError(field or self.kind, name, self.names())
        return self._items[key]

    def canonical(self, name: str, field: str | None = None) -> str:
        """The registered spelling of ``name`` (raises ConfigError when unknown)."""
        self.get(name, field)
        return self._display[str(name).lower()]

    def __contains__(self, name: object) -> bool:
        self._load()
        return str(name).lower() in self._items

    def names(self) -> list[str]:
        self._load()
        return sorted(self._display.values(), key=str.lower)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


# Registries that configs check names against, declared below every layer that fills them.
DATASETS: Registry[Any] = Registry("dataset", provider="gnnsec.data.registry")
GRAPH_MODELS: Registry[Any] = Registry("model", provider="gnnsec.models")
ATTACKS: Registry[Any] = Registry("attack", provider="gnnsec.attacks")
DEFENSES: Registry[Any] = Registry("defense", provider="gnnsec.defenses")
UNLEARNERS: Registry[Any] = Registry("unlearner", provider="gnnsec.unlearning")
