"""What the GCleaner tuner searches and maximises (``sweeps/tune_gcleaner.py`` runs it under Ray Tune).

Search spaces (Optuna distributions), the defender-only objective :func:`objective_of` that GCleaner's
per-epoch signals are scored with, and the Optuna searcher that records only final values.
"""

from __future__ import annotations

from typing import Any

# ---- search spaces (Optuna distributions; names are defense.params keys / dotted config keys) --------------


def gcleaner_space(max_epochs: int) -> dict[str, Any]:
    """λ, n, T, the per-class weight, learning rates and epochs of GCleaner (gnnsec/defenses/gcleaner/params.py).

    The detection thresholds and the guard's tolerances are not searched: the defender-only objective
    cannot judge them on backdoored models alone (see the protocol in gnnsec/defenses/gcleaner/__init__.py).
    """
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    return {
        "lam": FloatDistribution(0.0, 2.0),
        "n": IntDistribution(1, 7),
        "threshold": FloatDistribution(0.5, 0.99),
        "class_weight": FloatDistribution(0.0, 2.0),
        "recovery_lr": FloatDistribution(1e-3, 1e-1, log=True),
        "lr": FloatDistribution(1e-4, 3e-2, log=True),
        "recovery_epochs": CategoricalDistribution([5, 10, 20, 40]),
        "unlearn_epochs": IntDistribution(max(1, max_epochs // 3), max_epochs),
    }


def attack_space(max_epochs: int) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    return {
        "train.lr": FloatDistribution(1e-4, 1e-1, log=True),
        "train.batch_size": CategoricalDistribution([16, 32, 64, 128]),
        "train.epochs": IntDistribution(max(1, max_epochs // 3), max_epochs),
    }


def objective_of(row: dict[str, float]) -> float | None:
    """GCleaner's defender-side objective ``J`` (maximised) from one row of its own signals.

    ``J = soft_acc + (trigger_prob_before − trigger_prob)``, all on the defender's clean validation graphs
    (``val_*``; its fit graphs when it holds too few) with its *own* recovered trigger and class ĉ:

    - ``soft_acc``: mean probability of each graph's label (Eq. 4's first goal, F(G) = F₀(G), kept by
      L²_unlearn of Eq. 9, section 4.4);
    - ``trigger_prob``: mean probability of ĉ on the triggered copies of the graphs of other classes, for the
      input model (``_before``) and the model at hand (Eq. 4's second goal, F(G') = y_t, which L¹_unlearn
      undoes). The *drop* is used, not the level: a setting whose recovery (section 4.3, Eq. 6-8) finds no
      trigger has nothing to drop and cannot win by finding nothing, while "find a trigger that really moves
      the suspect model, then make the model ignore it" is what the defense is for.

    Probabilities instead of the rates (accuracy, flip rate) the guard uses, because on a defender's small
    clean set (24 validation graphs on AIDS) the rates tie for most settings (0.958 for every trial of the
    first benchmark); J ∈ [−1, 2]. Nothing here reads a test graph, the real trigger or the target label.
    Per unlearning epoch ``row`` describes the student at that epoch; at the end, the model GCleaner returns
    (``_after`` metrics; the input model, drop 0, when it returned it unchanged).
    """
    acc = row.get("val_soft_acc", row.get("val_soft_acc_before"))
    if acc is None or acc != acc:
        return None
    now, before = row.get("val_trigger_prob"), row.get("val_trigger_prob_before")
    drop = before - now if now is not None and before is not None else 0.0
    return float(acc) + (0.0 if drop != drop else float(drop))


def final_objective(metrics: dict[str, float]) -> float | None:
    """``J`` of the model GCleaner returned (its ``_after`` signals against the ``_before`` ones)."""
    row = {k: v for k, v in metrics.items() if k.endswith("_before")}
    if metrics.get("returned_input", 0.0) < 1:
        row.update({k.removesuffix("_after"): v for k, v in metrics.items() if k.endswith("_after")})
    return objective_of(row)


def final_value_search() -> type:
    """OptunaSearch whose trial *value* is only ever a final objective (the model GCleaner returned, or the
    mean over all cells): a trial ASHA stopped before its ``final`` report is told to Optuna as PRUNED
    (its per-epoch objectives stay as intermediate values, which TPE uses for pruned trials), so the
    study's best trial and the YAML written from it always describe a defense that ran to the end."""
    from ray.tune.search.optuna import OptunaSearch

    class FinalValueSearch(OptunaSearch):
        def on_trial_complete(
            self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
        ) -> None:
            if result is not None and not error and not result.get("final"):
                result = None  # OptunaSearch tells a trial without a value as PRUNED
            super().on_trial_complete(trial_id, result, error)

    return FinalValueSearch


def defaults_point(space: dict[str, Any]) -> list[dict[str, Any]]:
    """GCleaner's defaults for the searched keys (a value outside the space is clipped into it)."""
    from gnnsec.defenses.gcleaner.params import DEFAULTS
    from gnnsec.errors import ConfigError

    point: dict[str, Any] = {}
    for key, dist in space.items():
        if "." in key or key not in DEFAULTS:
            raise ConfigError("--enqueue-defaults", key, "GCleaner settings only (--target gcleaner)")
        value = DEFAULTS[key]
        if hasattr(dist, "choices"):
            value = value if value in dist.choices else dist.choices[0]
        else:
            value = min(max(value, dist.low), dist.high)
        point[key] = value
    return [point]
