"""Method names of the grids against gnnsec's registries: what exists, and names that must exist."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger("sweeps")


def registered(family: str) -> set[str] | None:
    """Names registered in ``family`` (lower case); None when the family does not exist yet."""
    try:
        if family == "attack":
            from gnnsec.attacks import ATTACKS as reg
        elif family == "defense":
            from gnnsec.defenses import DEFENSES as reg
        elif family == "model":
            from gnnsec.models import GRAPH_MODELS as reg
        elif family == "node_model":
            from gnnsec.models import NODE_MODELS as reg
        elif family == "dataset":
            from gnnsec.data.registry import DATASETS as reg
        elif family == "explainer":
            import gnnsec.explain  # noqa: F401  (registers every explainer)
            from gnnsec.explain.importance import NODE_EXPLAINERS as reg
        elif family == "heatmap":
            import gnnsec.explain  # noqa: F401
            from gnnsec.explain.heatmaps import HEATMAPS as reg
        elif family == "unlearner":
            from gnnsec.unlearning import UNLEARNERS as reg  # type: ignore[attr-defined]
        else:
            raise ValueError(f"unknown method family {family!r}")
    except ImportError as exc:
        log.debug("registry of %s unavailable: %s", family, exc)
        return None
    return {n.lower() for n in reg.names()}


def dataset_task(name: str) -> str | None:
    from gnnsec.data.registry import DATASETS

    return DATASETS.get(name).task if name in DATASETS else None


def check_datasets(field: str, names: Sequence[str] | None) -> None:
    """Every dataset name must be registered (a typo must not shrink the sweep): ConfigError otherwise."""
    from gnnsec.data.registry import DATASETS
    from gnnsec.errors import ConfigError

    for n in names or ():
        if n not in DATASETS:
            raise ConfigError(field, n, DATASETS.names())


def check_set_names(sets: Mapping[str, Any]) -> None:
    """Method names given with ``--set`` must be registered even where an axis of the grid overrides them."""
    from gnnsec import registry

    families = {
        "data.dataset": registry.DATASETS,
        "model.name": registry.GRAPH_MODELS,
        "attack.name": registry.ATTACKS,
        "defense.name": registry.DEFENSES,
    }
    for key, value in sets.items():
        if key in families and value is not None:
            families[key].get(value, key)
