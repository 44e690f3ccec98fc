#!/usr/bin/env python
"""Tune GCleaner's hyperparameters with Optuna (TPE) under Ray Tune's ASHA, on the defender's data only.

    python sweeps/tune_gcleaner.py --dataset AIDS --attack sub_ba --trials 40 --concurrency 2
    python sweeps/full.py --preset paper --defense-params runs/tuned/<study>.yaml

Objective (maximised, :func:`objective_of`): the defender's soft validation accuracy plus how much the
unlearning lowered the probability its own recovered trigger gives the suspected class, both measured by
GCleaner on the clean set it holds (``DefenderData``); test graphs and the real trigger are never touched:
this script never even evaluates on the test split. GCleaner reports it after every unlearning epoch and
ASHA ends the worse trials there (their remaining epochs are never computed). The backdoored model comes
from the shared artifact cache (trained once).

``--target attack`` (automatic when no ``gcleaner`` defense is registered) tunes the attack's training
instead (lr, epochs, batch size) on a validation part of the *training* split: objective = validation
accuracy + validation ASR of the backdoored model, reported every epoch.

The Optuna study lives in ``<run dir>/optuna.db`` (``--study`` names it), so running the script again
continues the same study: TPE conditions on every earlier trial. Every trial is an MLflow run (per-epoch
objective); the best parameters go to MLflow and to a YAML file that ``sweeps/full.py --defense-params``
reads.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

_checkout = Path(__file__).resolve().parents[1]
if (
    _checkout / "sweeps" / "spec.py"
).is_file():  # run from a checkout: use its code (else: the installed one)
    sys.path.insert(0, str(_checkout))
try:
    from sweeps.spec import build_config, flatten_config  # (pickled by value with the trainables)
    from sweeps.tuning import (
        attack_space,
        defaults_point,
        final_objective,
        final_value_search,
        gcleaner_space,
        objective_of,
    )
except ModuleNotFoundError as exc:
    if exc.name not in ("sweeps", "sweeps.spec", "sweeps.tuning", "gnnsec"):
        raise
    sys.exit(
        f"{Path(__file__).name}: cannot import {exc.name!r} with {sys.executable}: install the project "
        "(pip install -e <checkout>, which ships the `sweeps` package) or run the script from a checkout"
    )

log = logging.getLogger("sweeps.tune")


# ---- trainables (run in Ray workers) -------------------------------------------------------------------
def _base_config(spec: dict[str, Any], tuned: dict[str, Any], cell: list[Any] | None = None) -> Any:
    from gnnsec.config import TrialConfig

    if cell is None:
        flat = flatten_config(spec["config"])
    else:  # a (dataset, attack, seed) cell of a multi-cell study, built from the user's unresolved keys
        dataset, attack, seed = cell
        flat = {**spec["flat"], "data.dataset": dataset, "attack.name": attack, "seed": seed}
    flat.update({k: v for k, v in tuned.items() if "." in k})
    if spec["target"] == "gcleaner":
        # a trial evaluates the learning rate it sampled, in the epoch budget ASHA counts: no fallback to
        # smaller ones (GCleaner's lr_retries restarts unlearning, which would outrun --max-epochs)
        flat["defense.params.lr_retries"] = 0
        for key, value in tuned.items():
            if "." not in key:
                flat[f"defense.params.{key}"] = value
    return TrialConfig.from_dict(build_config(flat))


def _defend_cell(spec: dict[str, Any], cfg: Any, on_epoch: Any) -> Any:
    """Backdoored model from the shared cache, GCleaner on the holding split only (never test graphs)."""
    from gnnsec import pipeline
    from gnnsec.cache import ArtifactCache
    from gnnsec.data.loading import load_graph_dataset
    from gnnsec.defenses import DEFENSES, DefenderData

    cache = ArtifactCache(spec["cache_root"])
    ds = load_graph_dataset(cfg.data)
    split = ds.split(cfg.data)
    clean, _ = pipeline.clean_model(cfg, ds, split, cache)
    _, backdoored, _ = pipeline.backdoored_model(cfg, ds, split, cache, clean)
    defense = DEFENSES.get(cfg.defense.name)(cfg.defense)
    defense.on_epoch = on_epoch  # Defense progress hook (gnnsec.defenses.base)
    return defense.defend(backdoored, DefenderData(ds.subset(split.holding), ds.num_classes, ds.featurizer))


def tune_gcleaner_trainable(config: dict[str, Any]) -> None:
    """Backdoored model from the cache -> GCleaner on the holding split; reports ``objective`` live.

    One cell: one report per unlearning epoch, while GCleaner runs, then the final value. Several cells
    (``--cells``, e.g. both development datasets x four attacks): one report per finished cell with the
    running mean of the cells' final objectives, so ASHA stops a poor setting after ``--grace`` cells.
    """
    import torch
    from ray import tune

    spec = config["trial"]
    torch.set_num_threads(max(1, int(spec.get("threads", 1))))
    tuned = {k: v for k, v in config.items() if k != "trial"}
    cells = spec.get("cells") or []
    cpu0 = time.thread_time()  # CPU seconds of this trial's thread (torch runs single-threaded here)
    if len(cells) > 1:
        values: list[float] = []
        for i, cell in enumerate(cells):
            outcome = _defend_cell(spec, _base_config(spec, tuned, cell), None)
            value = final_objective(outcome.metrics)
            values.append(-1.0 if value is None or value != value else value)
            tune.report(
                {
                    "objective": sum(values) / len(values),
                    "cell": float(i),
                    "cell_objective": values[-1],
                    "final": float(i == len(cells) - 1),
                    "cpu_seconds": time.thread_time() - cpu0,
                }
            )
        return

    def on_epoch(epoch: int, row: dict[str, float]) -> None:
        # live, while GCleaner unlearns: ASHA compares trials at equal epochs and stops the worse ones
        # (Ray ends a stopped trial's worker while it waits in tune.report, so the rest is never computed)
        value = objective_of(row)
        if value is not None:
            tune.report({"objective": value, **_floats(row), "cpu_seconds": time.thread_time() - cpu0})

    outcome = _defend_cell(spec, _base_config(spec, tuned, cells[0] if cells else None), on_epoch)
    final = final_objective(outcome.metrics)
    if final is not None:
        tune.report(
            {
                "objective": final,
                "final": 1.0,
                **_floats(outcome.metrics),
                "cpu_seconds": time.thread_time() - cpu0,
            }
        )


def tune_attack_trainable(config: dict[str, Any]) -> None:
    """Train the backdoored model on part of the training split, report validation ACC + ASR per epoch."""
    import numpy as np
    import torch
    from ray import tune

    from gnnsec import pipeline
    from gnnsec.attacks import AttackContext
    from gnnsec.cache import ArtifactCache
    from gnnsec.data.loading import load_graph_dataset
    from gnnsec.train import evaluate, fit, predict

    spec = config["trial"]
    torch.set_num_threads(max(1, int(spec.get("threads", 1))))
    cfg = _base_config(spec, {k: v for k, v in config.items() if k != "trial"})
    cache = ArtifactCache(spec["cache_root"])
    ds = load_graph_dataset(cfg.data)
    split = ds.split(cfg.data)
    rng = np.random.default_rng(cfg.data.split_seed)
    order = rng.permutation(np.asarray(split.train))
    n_val = max(2, int(round(0.2 * len(order))))
    fit_graphs, val_graphs = ds.subset(order[n_val:].tolist()), ds.subset(order[:n_val].tolist())
    clean, _ = pipeline.clean_model(cfg, ds, split, cache) if _needs_clean(cfg) else (None, None)
    attack = pipeline.make_attack(cfg, ds)
    ctx = AttackContext(
        fit_graphs,
        ds.featurizer,
        ds.num_classes,
        ds.avg_nodes,
        lambda: pipeline.new_model(cfg, ds),
        cfg.train,
        clean,
    )
    attack.reseed(pipeline.POISON_SALT)
    attack.prepare(ctx)
    poisoned = attack.poison(fit_graphs, attack.select_victims(fit_graphs))
    target = cfg.attack.target_label
    val_victims = [g for g in val_graphs if int(g.y) != target]
    attack.reseed(pipeline.EVAL_SALT)
    val_triggered = attack.inject(val_victims)
    model = pipeline.new_model(cfg, ds)

    def on_epoch(epoch: int, row: dict[str, float]) -> None:
        acc = evaluate(model, val_graphs).acc
        asr = float((predict(model, val_triggered) == target).float().mean()) if val_triggered else 0.0
        tune.report({"objective": acc + asr, "val_acc": acc, "val_asr": asr, "loss": row["loss"]})
        model.train()

    fit(model, poisoned, cfg.train, on_epoch=on_epoch)


def _needs_clean(cfg: Any) -> bool:
    return cfg.attack.name in ("exp_ba", "motif_ba")


def _floats(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _parse_cell(text: str) -> list[Any]:
    from gnnsec.errors import ConfigError

    parts = text.split(":")
    if len(parts) != 3 or not parts[2].lstrip("-").isdigit():
        raise ConfigError("--cells", text, "DATASET:ATTACK:SEED, e.g. AIDS:sub_ba:0")
    return [parts[0], parts[1], int(parts[2])]


# ---- driver ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sweeps/tune_gcleaner.py", description=__doc__.splitlines()[0])
    p.add_argument("--target", choices=["auto", "gcleaner", "attack"], default="auto")
    p.add_argument("--dataset", default="AIDS")
    p.add_argument("--attack", default="sub_ba")
    p.add_argument("--model", default="GIN")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cells",
        nargs="+",
        metavar="DATASET:ATTACK:SEED",
        help="tune GCleaner on several backdoored models at once (objective: mean over cells)",
    )
    p.add_argument("--trials", type=int, default=20, help="new trials in this session")
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--max-epochs", type=int, default=30, help="ASHA's max_t (unlearning / training epochs)")
    p.add_argument("--grace", type=int, default=3, help="ASHA grace period (epochs)")
    p.add_argument(
        "--scheduler",
        choices=["asha", "fifo"],
        default="asha",
        help="fifo: run every trial to the end (the baseline of benchmarks/bench_tune_asha.py)",
    )
    p.add_argument(
        "--enqueue-defaults",
        action="store_true",
        help="first trial: GCleaner's current defaults (params.py), as a reference value for the study",
    )
    p.add_argument("--study", help="Optuna study name (default <target>-<dataset>-<attack>)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="fixed config, e.g. train.epochs=3"
    )
    p.add_argument("--out", help="YAML of the best parameters (default <run dir>/tuned/<study>.yaml)")
    p.add_argument("--run-dir")
    p.add_argument("--cache-dir")
    p.add_argument("--address")
    p.add_argument("--num-cpus", type=int)
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0)
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("sweeps").setLevel(logging.INFO)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import optuna
    import yaml
    from ray import cloudpickle, tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    import sweeps
    from gnnsec.cache import ArtifactCache, atomic_write_text
    from gnnsec.config import parse_value
    from gnnsec.defenses import DEFENSES
    from gnnsec.paths import inside, safe_name
    from gnnsec.tracking import (
        TrackerSettings,
        artifact_location,
        default_run_dir,
        environment_tags,
        tracking_uri,
    )
    from sweeps.callbacks import MlflowSweepCallback
    from sweeps.driver import init_ray

    target = args.target
    if target == "auto":
        target = "gcleaner" if "gcleaner" in DEFENSES else "attack"
    study_name = safe_name(args.study or f"{target}-{args.dataset}-{args.attack}", "--study")
    run_dir = Path(args.run_dir).expanduser().resolve() if args.run_dir else default_run_dir()
    if args.out:  # names and paths that become files stay inside the run folder
        inside(run_dir, Path(args.out), "--out")
    run_dir.mkdir(parents=True, exist_ok=True)
    cache_root = (
        str(Path(args.cache_dir).expanduser().resolve()) if args.cache_dir else str(ArtifactCache().root)
    )

    flat: dict[str, Any] = {
        "seed": args.seed,
        "data.dataset": args.dataset,
        "model.name": args.model,
        "attack.name": args.attack,
    }
    if target == "gcleaner":
        flat["defense.name"] = "gcleaner"
    for item in args.set:
        key, _, value = item.partition("=")
        flat[key] = parse_value(value)
    from gnnsec.config import TrialConfig

    base = TrialConfig.from_dict(build_config(flat)).to_dict()  # validate before starting Ray
    cells = [_parse_cell(c) for c in args.cells or []]
    for cell in cells:  # every cell validated before starting Ray too
        TrialConfig.from_dict(
            build_config({**flat, "data.dataset": cell[0], "attack.name": cell[1], "seed": cell[2]})
        )
    space = gcleaner_space(args.max_epochs) if target == "gcleaner" else attack_space(args.max_epochs)
    storage = optuna.storages.RDBStorage(f"sqlite:///{run_dir / 'optuna.db'}")
    searcher = (final_value_search() if target == "gcleaner" else OptunaSearch)(
        space=space,
        metric="objective",
        mode="max",
        sampler=optuna.samplers.TPESampler(seed=args.seed),
        study_name=study_name,
        storage=storage,
        points_to_evaluate=defaults_point(space) if args.enqueue_defaults else None,
    )
    max_t = len(cells) if len(cells) > 1 else max(args.max_epochs, 1) + 1  # + the final report
    scheduler = (
        None
        if args.scheduler == "fifo"
        else ASHAScheduler(
            metric="objective",
            mode="max",
            time_attr="training_iteration",
            max_t=max_t,
            grace_period=min(max(1, args.grace), max_t),
            reduction_factor=2,
        )
    )
    uri = tracking_uri(run_dir)
    settings = TrackerSettings(
        uri=uri,
        experiment=f"gnnsec/tune-{study_name}",
        artifact_location=artifact_location(uri, run_dir),
        tags={**environment_tags(), "gnnsec.study": study_name, "gnnsec.target": target},
    )
    callback = MlflowSweepCallback(settings, log_intermediate=True)
    callback.tracker.experiment_id  # noqa: B018

    cloudpickle.register_pickle_by_value(sweeps)
    fn = tune_gcleaner_trainable if target == "gcleaner" else tune_attack_trainable
    trainable = tune.with_resources(fn, {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial})
    spec = {
        "name": study_name,
        "subsweep": f"tune-{target}",
        "target": target,
        "config": base,
        "flat": flat,
        "cells": cells,
        "cache_root": cache_root,
        "threads": max(1, int(args.cpus_per_trial)),
    }
    init_ray(
        argparse.Namespace(
            address=args.address, num_cpus=args.num_cpus, dashboard=False, verbose=args.verbose
        )
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": spec},
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=args.trials,
            max_concurrent_trials=args.concurrency,
        ),
        run_config=tune.RunConfig(
            name=f"tune-{study_name}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(run_dir / "ray"),
            failure_config=tune.FailureConfig(max_failures=1),
            callbacks=[callback],
            progress_reporter=tune.CLIReporter(
                metric_columns=["objective", "training_iteration"],
                parameter_columns=list(space),
                metric="objective",
                mode="max",
                sort_by_metric=True,
                max_report_frequency=30,
            ),
            verbose=1,
        ),
    )
    try:
        tuner.fit()
    finally:
        callback.tracker.kill_open()

    study = optuna.load_study(study_name=study_name, storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        log.error("no completed trial in study %s", study_name)
        return 1
    best = study.best_trial
    params = dict(best.params)
    if target == "gcleaner":
        payload: dict[str, Any] = {"gcleaner": params}
    else:
        payload = {"overrides": params}
    out = Path(args.out) if args.out else run_dir / "tuned" / f"{study_name}.yaml"
    header = (
        f"# best of Optuna study {study_name!r} ({len(done)} completed trials, objective {best.value:.4f});\n"
        f"# use: python sweeps/full.py --defense-params {out}\n"
    )
    atomic_write_text(out, header + yaml.safe_dump(payload, sort_keys=True))
    _log_best(settings, study_name, best.value, params, out, len(done))
    print(f"best objective {best.value:.4f} after {len(done)} trials: {params}\nwritten {out}")
    return 0


def _log_best(settings: Any, study: str, value: float, params: dict[str, Any], out: Path, n: int) -> None:
    from gnnsec.tracking import TrialTracker

    tracker = TrialTracker(settings)
    key = f"best-{study}-{int(time.time())}"
    tracker.start(
        key, f"best/{study}", {"best": params}, {"gnnsec.kind": "best", "gnnsec.study_trials": str(n)}
    )
    tracker.log_metrics(key, {"best_objective": value})
    tracker.log_file(key, out)
    tracker.finish(key)


if __name__ == "__main__":
    sys.exit(main())
