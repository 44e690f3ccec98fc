"""Grid machinery: a sub-sweep is data (axes, fixed values, cases); ``expand`` turns a preset into trials.

Keys are dotted TrialConfig paths (``attack.injection_ratio``, ``defense.params.epochs``) plus ``seed``,
which sets every seed of a trial (training, split, attack, defense) so that seed ``s`` is one independent
repetition of the whole experiment. Each trial's config is built in this order (later wins):

    DEFAULTS -> sub-sweep ``fixed`` -> preset ``overrides`` -> per-defense params (preset, then
    ``--defense-params`` file) -> the sub-sweep's axis values and cases

and validated by :class:`gnnsec.config.TrialConfig` before anything runs. Sweeps never shrink silently:

- a name the user gave (``--only``, ``--datasets``, a preset's datasets, a ``--set`` or ``--defense-params``
  value that makes a config invalid) that is unknown fails with a ConfigError listing the valid choices;
- the study's own grids list the paper's methods before they all exist: unregistered values of an axis
  are dropped, and a sub-sweep left with nothing to run (or whose configs do not validate, e.g. a
  parameter its defense does not have yet) is skipped; both are logged at WARNING with the reason and
  kept in the :class:`Plan` (``dropped``/``skipped``) for the dry-run table and the driver's final summary.
"""

from __future__ import annotations

import copy
import functools
import itertools
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sweeps.methods import check_datasets, check_set_names, dataset_task, registered  # noqa: F401

if TYPE_CHECKING:
    from gnnsec.artifact_keys import TrialModels

log = logging.getLogger("sweeps")

SEED_KEYS = ("train.seed", "data.split_seed", "attack.seed", "defense.seed")


@dataclass(frozen=True)
class SubSweep:
    """One named part of the study: the cartesian product of ``axes`` (times ``cases``) around defaults.

    ``methods`` maps keys whose values are method names to their registry family (attack, defense,
    explainer, heatmap, unlearner, model, dataset). ``factor`` is the key an ablation varies: the report's
    x axis. ``task`` is the dataset task (graph / node) the sub-sweep applies to.
    """

    name: str
    paper: str
    axes: Mapping[str, Sequence[Any]]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    cases: Sequence[Mapping[str, Any]] = ()
    factor: str | None = None
    task: str = "graph"
    methods: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class Preset:
    """Which sub-sweeps, datasets and seeds; overrides for speed; per-sub-sweep axis limits."""

    name: str
    description: str
    subsweeps: Sequence[str] | None = None  # None: all
    datasets: Sequence[str] | None = None  # None: each sub-sweep's own
    seeds: Sequence[int] = (0,)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    defense_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    limits: Mapping[str, Mapping[str, Sequence[Any]]] = field(default_factory=dict)  # sub-sweep|"*" -> key


@dataclass
class TrialSpec:
    """One trial: its sub-sweep, a readable name, the TrialConfig dict and the values that made it."""

    subsweep: str
    name: str
    config: dict[str, Any]
    values: dict[str, Any]
    factor: str | None = None

    @functools.cached_property
    def models(self) -> TrialModels:
        """Cache keys (``kind/key``) of the models this trial trains: :mod:`gnnsec.artifact_keys`, the same
        function the pipeline builds and finds them with."""
        from gnnsec.artifact_keys import trial_models
        from gnnsec.config import TrialConfig

        return trial_models(TrialConfig.from_dict(copy.deepcopy(self.config)))

    @property
    def clean_key(self) -> str | None:
        """The clean model's key (node trials: the base model's); None when the trial trains none."""
        return self.models.clean or self.models.node_base

    @property
    def backdoor_key(self) -> str | None:
        return self.models.backdoor

    @property
    def defended_key(self) -> str | None:
        return self.models.defended


@dataclass
class Plan:
    """The expanded trials of a preset, and what was skipped or dropped, per sub-sweep."""

    preset: str
    trials: list[TrialSpec]
    order: list[str]  # sub-sweep names in grid order (those run and those skipped)
    skipped: dict[str, str] = field(default_factory=dict)
    declared: dict[str, int] = field(default_factory=dict)  # size of each grid before registry filtering
    dropped: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def shrinkage(self) -> list[str]:
        """One line per sub-sweep that lost methods/datasets or was skipped (empty: nothing was lost)."""
        lines = [f"{n}: skipped: {why}" for n, why in self.skipped.items()]
        for n, lost in self.dropped.items():
            what = "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in lost.items())
            lines.append(f"{n}: without unregistered {what}")
        return lines

    def distinct_models(self) -> dict[str, int]:
        """How many distinct models of each kind the plan trains (each once, through the artifact cache)."""
        kinds: dict[str, set[str]] = {
            "clean": set(),
            "backdoor": set(),
            "defended": set(),
            "node_base": set(),
        }
        for t in self.trials:
            for key in t.models.all():
                kinds[key.split("/", 1)[0]].add(key)
        return {k: len(v) for k, v in kinds.items()}

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(self.order, 0)
        for t in self.trials:
            out[t.subsweep] = out.get(t.subsweep, 0) + 1
        return out


# ---- config building -----------------------------------------------------------------------------------
def flatten_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys of a nested TrialConfig dict (inverse of :func:`build_config`)."""
    from gnnsec.tracking import flatten

    return flatten(config)


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    if dotted == "seed":
        for key in SEED_KEYS:
            set_dotted(tree, key, value)
        return
    *parents, leaf = dotted.split(".")
    node = tree
    for p in parents:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[leaf] = copy.deepcopy(value)


def build_config(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Nested TrialConfig dict from dotted keys (``seed`` first, so explicit seeds win).

    ``{"attack": None}`` (or ``defense``) removes that section, with every ``attack.*`` key.
    """
    removed = [s for s in ("attack", "defense") if s in flat and flat[s] is None]
    tree: dict[str, Any] = {}
    if "seed" in flat:
        set_dotted(tree, "seed", flat["seed"])
    for key, value in flat.items():
        if key != "seed" and key not in removed and key.split(".", 1)[0] not in removed:
            set_dotted(tree, key, value)
    for section in removed:
        tree.pop(section, None)
    return tree


def short(key: str) -> str:
    return {"data.dataset": "", "model.name": "", "attack.name": "", "defense.name": "", "seed": "s"}.get(
        key, key.rsplit(".", 1)[-1] + "="
    )


def trial_name(subsweep: str, values: Mapping[str, Any]) -> str:
    parts = [subsweep]
    for key in ("data.dataset", "model.name", "attack.name", "defense.name", "unlearning.name"):
        if key in values:
            parts.append(str(values[key]))
    for key, value in values.items():
        if key in ("data.dataset", "model.name", "attack.name", "defense.name", "unlearning.name", "seed"):
            continue
        parts.append(f"{short(key)}{_fmt(value)}")
    if "seed" in values:
        parts.append(f"s{values['seed']}")
    return "/".join(parts)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        return ",".join(f"{k.rsplit('.', 1)[-1]}={_fmt(v)}" for k, v in value.items())
    return str(value)


# ---- expansion -----------------------------------------------------------------------------------------
def expand(
    subsweeps: Mapping[str, SubSweep],
    defaults: Mapping[str, Any],
    preset: Preset,
    only: Iterable[str] | None = None,
    datasets: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    defense_params: Mapping[str, Any] | None = None,
    sets: Mapping[str, Any] | None = None,
) -> Plan:
    """All trials of ``preset`` (optionally restricted), validated; skipped sub-sweeps say why.

    ``sets`` are the user's ``--set`` overrides (applied after the preset's); a user value that makes
    a sub-sweep's configs invalid raises, while the grid's own not-yet-available parts are skipped.
    """
    from gnnsec.errors import ConfigError

    names = list(only) if only else list(preset.subsweeps or subsweeps)
    unknown = [n for n in names if n not in subsweeps]
    if unknown:
        raise ConfigError(
            "--only" if only else f"preset {preset.name}.subsweeps", unknown[0], list(subsweeps)
        )
    check_datasets("--datasets", datasets)
    check_datasets(f"preset {preset.name}.datasets", preset.datasets)
    user_sets = dict(sets or {})
    check_set_names(user_sets)
    seeds = list(seeds if seeds is not None else preset.seeds)
    cli_datasets = list(datasets) if datasets else None
    file_params = dict(defense_params or {})
    file_overrides = dict(file_params.pop("overrides", None) or {})

    plan = Plan(preset.name, [], names)
    for name in names:
        sub = subsweeps[name]
        axes: dict[str, list[Any]] = {k: list(v) for k, v in sub.axes.items()}
        fixed = {**defaults, **sub.fixed}
        if preset.datasets and "data.dataset" not in sub.fixed:  # the preset's datasets, unless limited
            chosen = [d for d in preset.datasets if dataset_task(d) == sub.task]
            if chosen:
                fixed.pop("data.dataset", None)
                axes["data.dataset"] = chosen
        for scope in ("*", name):
            for key, values in preset.limits.get(scope, {}).items():
                if key in axes or key in fixed or scope == name:
                    fixed.pop(key, None)
                    axes[key] = list(values)
        if cli_datasets is not None:  # --datasets replaces every sub-sweep's datasets
            chosen = [d for d in cli_datasets if dataset_task(d) == sub.task]
            if not chosen:
                plan.declared[name] = 0
                plan.skipped[name] = f"none of the datasets {cli_datasets} is a {sub.task}-level dataset"
                log.warning("sweep %s: skipped: %s", name, plan.skipped[name])
                continue
            fixed.pop("data.dataset", None)
            axes["data.dataset"] = chosen
        axes["seed"] = seeds
        plan.declared[name] = math.prod(len(v) for v in axes.values()) * max(1, len(sub.cases))

        reason = _filter_methods(name, sub, axes, fixed, plan)
        if reason:
            plan.skipped[name] = reason
            log.warning("sweep %s: skipped: %s", name, reason)
            continue

        user = (file_params, {**file_overrides, **user_sets})
        trials, reason = _trials(name, sub, axes, fixed, preset, *user)
        if reason:
            _, without_user = _trials(name, sub, axes, fixed, preset, {}, {})
            if without_user is None:  # the grid itself is fine: the user's value broke it, so say which
                _trials(name, sub, axes, fixed, preset, *user, strict=True)
            plan.skipped[name] = reason
            log.warning("sweep %s: skipped: %s", name, reason)
            continue
        plan.trials.extend(trials)
    return plan


def _filter_methods(
    name: str, sub: SubSweep, axes: dict[str, list[Any]], fixed: dict[str, Any], plan: Plan
) -> str | None:
    dropped: dict[str, list[Any]] = {}
    for key, family in sub.methods.items():
        known = registered(family)
        if key in axes:
            values = axes[key]
            if known is None:
                return f"no {family} registry exists yet ({key})"
            keep = [v for v in values if str(v).lower() in known]
            if len(keep) < len(values):
                dropped[key] = [v for v in values if str(v).lower() not in known]
            if not keep:
                return f"no registered {family} among {values} ({key}); registered: {sorted(known)}"
            axes[key] = keep
        elif key in fixed:
            value = fixed[key]
            if known is None or str(value).lower() not in known:
                return f"{family} {value!r} is not registered ({key})"
    for case in sub.cases:
        for key, family in sub.methods.items():
            if key in case:
                known = registered(family)
                if known is None or str(case[key]).lower() not in known:
                    return f"{family} {case[key]!r} is not registered ({key})"
    if dropped:
        plan.dropped[name] = dropped
        text = "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in dropped.items())
        log.warning("sweep %s: leaving out unregistered %s", name, text)
    return None


def _trials(
    name: str,
    sub: SubSweep,
    axes: dict[str, list[Any]],
    fixed: dict[str, Any],
    preset: Preset,
    file_params: Mapping[str, Any],
    file_overrides: Mapping[str, Any],
    strict: bool = False,
) -> tuple[list[TrialSpec], str | None]:
    """Every combination of the axes (times the cases), validated; or the reason the first one fails
    (``strict``: raise that ConfigError instead)."""
    from gnnsec.config import TrialConfig
    from gnnsec.errors import ConfigError

    keys = list(axes)
    cases = list(sub.cases) or [{}]
    out: list[TrialSpec] = []
    for case in cases:
        for combo in itertools.product(*(axes[k] for k in keys)):
            values = {**dict(zip(keys, combo)), **case}
            flat = {**fixed, **preset.overrides, **file_overrides}
            defense = values.get("defense.name", flat.get("defense.name"))
            if defense is not None:
                for source in (preset.defense_params, file_params):
                    for pkey, pval in dict(source.get(str(defense), {}) or {}).items():
                        flat[f"defense.params.{pkey}"] = pval
            flat.update(values)
            cfg = build_config(flat)
            try:
                cfg = TrialConfig.from_dict(cfg).to_dict()
            except ConfigError as exc:
                if strict:
                    raise
                return [], f"{exc} (first failing trial: {trial_name(name, values)})"
            always = ("data.dataset", "attack.name", "defense.name", "seed")
            shown = {k: values[k] for k in keys if len(axes[k]) > 1 or k in always}
            shown.update(case)
            out.append(TrialSpec(name, trial_name(name, shown), cfg, values, sub.factor))
    return out, None


def schedule(trials: Sequence[TrialSpec]) -> list[TrialSpec]:
    """Order trials so shared cached artifacts are built once, early, and not by many trials at once.

    Tier 0: the first trial of each clean-model key; tier 1: the first trial of each backdoored-model key;
    tier 2: everything else (which then only reads the cache). Trials that need an artifact another running
    trial is still building wait on :class:`gnnsec.cache.ArtifactCache`'s per-key file lock instead of
    training it again.
    """
    seen_clean: set[str] = set()
    seen_bd: set[str] = set()
    tiers: list[list[TrialSpec]] = [[], [], []]
    for t in trials:
        if t.clean_key and t.clean_key not in seen_clean:
            seen_clean.add(t.clean_key)
            seen_bd.add(t.backdoor_key or "")
            tiers[0].append(t)
        elif t.backdoor_key and t.backdoor_key not in seen_bd:
            seen_bd.add(t.backdoor_key)
            tiers[1].append(t)
        else:
            tiers[2].append(t)
    return tiers[0] + tiers[1] + tiers[2]
