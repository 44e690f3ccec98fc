"""The sweep driver: expand a preset into trials, run them with Ray Tune, record them in MLflow.

    python sweeps/full.py --preset quick                 # one machine: embedded Ray, runs/mlflow.db
    RAY_ADDRESS=auto python sweeps/full.py --preset paper  # join a running cluster
    ray submit cluster/cluster.yaml sweeps/full.py --preset paper

Ray: with ``--address`` or ``$RAY_ADDRESS`` the driver joins that cluster; otherwise it starts an embedded,
private Ray instance (``address="local"``) with the machine's CPUs. Each trial asks for
``--cpus-per-trial`` CPUs and ``--gpus-per-trial`` (fractional) GPUs; failures are retried
``--max-failures`` times and never stop the sweep; ``--resume`` continues an interrupted sweep from Tune's
experiment state without re-running finished trials. MLflow: see :mod:`gnnsec.tracking`.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sweeps import grids
from sweeps.estimate import dry_run_text, estimate, trial_seconds  # noqa: F401  (re-exported)
from sweeps.spec import Plan, TrialSpec, expand, schedule

log = logging.getLogger("sweeps")


# ---- arguments -----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sweeps/full.py",
        description="Run the GCleaner study (or part of it) as a Ray Tune sweep tracked in MLflow.",
    )
    p.add_argument("--preset", choices=sorted(grids.PRESETS), default="quick")
    p.add_argument("--only", nargs="+", metavar="SUBSWEEP", help=f"among: {', '.join(grids.SUBSWEEPS)}")
    p.add_argument("--datasets", nargs="+", help="replace every sub-sweep's datasets (same task only)")
    p.add_argument("--seeds", nargs="+", type=int, help="seeds (repetitions); default: the preset's")
    p.add_argument(
        "--dry-run", action="store_true", help="print trial counts and a time estimate; run nothing"
    )
    p.add_argument("--defense-params", metavar="FILE", help="YAML {defense: {param: value}} (the tuner's)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value in every trial, e.g. --set train.epochs=20 (value parsed as YAML)",
    )
    p.add_argument("--name", help="sweep name (Ray experiment + MLflow experiment gnnsec/NAME)")
    p.add_argument("--run-dir", help="run folder (default $GNNSEC_RUN_DIR or ./runs)")
    p.add_argument(
        "--storage", help="Ray Tune storage path (default <run dir>/ray; shared FS or URI on clusters)"
    )
    p.add_argument("--cache-dir", help="artifact cache shared by trials (default $GNNSEC_ARTIFACT_DIR)")
    p.add_argument(
        "--resume", action="store_true", help="continue the sweep --name (default: the latest of --preset)"
    )
    p.add_argument("--retry-failed", action="store_true", help="with --resume: also re-run failed trials")
    p.add_argument("--address", help="Ray cluster address (default $RAY_ADDRESS; none: embedded Ray)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the embedded Ray (default: all of this machine)")
    p.add_argument("--max-concurrent", type=int, default=0, help="max trials at once (0: as resources allow)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractions share a GPU, e.g. 0.25")
    p.add_argument("--max-failures", type=int, default=2, help="retries of a failing trial")
    p.add_argument("--no-report", dest="report", action="store_false", help="skip tables/figures at the end")
    p.add_argument("--dashboard", action="store_true", help="start the Ray dashboard with embedded Ray")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def load_defense_params(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    from gnnsec.config import load_yaml
    from gnnsec.errors import ConfigError

    file = Path(path)
    if not file.is_file():
        raise ConfigError("--defense-params", path, "an existing YAML file")
    data = load_yaml(file.read_text()) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError("--defense-params", path, "a mapping {defense name: {param: value}}")
    return data


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    from gnnsec.config import parse_value
    from gnnsec.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--set", item, "KEY=VALUE, e.g. train.epochs=20")
        out[key.strip()] = parse_value(value)
    return out


def make_plan(args: argparse.Namespace) -> Plan:
    preset = grids.PRESETS[args.preset]
    sets = parse_sets(getattr(args, "set", []) or [])
    return expand(
        grids.SUBSWEEPS,
        grids.DEFAULTS,
        preset,
        only=args.only,
        datasets=args.datasets,
        seeds=args.seeds,
        defense_params=load_defense_params(args.defense_params),
        sets=sets,
    )


# ---- Ray -----------------------------------------------------------------------------------------------
def init_ray(args: argparse.Namespace) -> str:
    """Join ``--address`` / ``$RAY_ADDRESS``, or start an embedded private Ray; return which."""
    import ray

    if ray.is_initialized():
        return "existing"
    address = args.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return address
    from sweeps import embedded_ray

    embedded_ray.reap_stale()  # what a SIGKILLed driver's embedded Ray left running (recorded pids only)
    atexit.register(embedded_ray.forget)  # before ray.init: runs after Ray's own atexit shutdown (LIFO)
    ray.init(
        address="local",
        num_cpus=args.num_cpus or os.cpu_count(),
        include_dashboard=bool(args.dashboard),
        log_to_driver=args.verbose > 0,
    )
    embedded_ray.record()
    return "embedded"


def trial_param(t: TrialSpec, args: argparse.Namespace, cache_root: str) -> dict[str, Any]:
    # attack.clean_concurrent runs two processes (gnnsec/pipeline_clean.py): each gets half the trial's CPUs
    procs = 2 if (t.config.get("attack") or {}).get("clean_concurrent") else 1
    return {
        "name": t.name,
        "subsweep": t.subsweep,
        "factor": t.factor,
        "config": t.config,
        "cache_root": cache_root,
        "threads": max(1, int(math.floor(args.cpus_per_trial / procs))),
    }


def trial_name(trial: Any) -> str:
    return str(trial.config["trial"]["name"])


def trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def latest_experiment(storage: Path, preset: str) -> Path | None:
    candidates = [p for p in storage.glob(f"{preset}-*") if (p / "tuner.pkl").is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def run(args: argparse.Namespace, trainable_fn: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Run (or resume) the sweep; ``trainable_fn`` replaces the trial function (tests inject faults)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # use the CLIReporter (trials done/total, best)
    from ray import cloudpickle, tune

    from gnnsec.cache import ArtifactCache
    from gnnsec.tracking import TrackerSettings, artifact_location, default_run_dir, environment_tags
    from gnnsec.tracking import tracking_uri as store_uri
    from sweeps.callbacks import MlflowSweepCallback
    from sweeps.trainable import sweep_trainable

    run_dir = Path(args.run_dir).expanduser().resolve() if args.run_dir else default_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    storage = args.storage or str(run_dir / "ray")
    if "://" not in storage:
        storage = str(Path(storage).expanduser().resolve())
        Path(storage).mkdir(parents=True, exist_ok=True)
    cache_root = (
        str(Path(args.cache_dir).expanduser().resolve()) if args.cache_dir else str(ArtifactCache().root)
    )

    restore_path: str | None = None
    planned = 0
    shrinkage: list[str] = []
    if args.resume:
        if args.name:
            restore_path = f"{storage.rstrip('/')}/{args.name}"
        elif "://" not in storage:
            found = latest_experiment(Path(storage), args.preset)
            restore_path = str(found) if found else None
        if not restore_path or not tune.Tuner.can_restore(restore_path):
            log.error("nothing to resume at %s (give --name of the sweep to resume)", restore_path or storage)
            return 2
        args.name = restore_path.rstrip("/").rsplit("/", 1)[-1]
        meta = _read_meta(storage, args.name)
        args.preset = meta.get("preset", args.preset)
        planned = int(meta.get("trials", 0))
        shrinkage = list(meta.get("shrinkage", []))
    name = args.name or f"{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    uri = store_uri(run_dir)
    settings = TrackerSettings(
        uri=uri,
        experiment=f"gnnsec/{name}",
        artifact_location=artifact_location(uri, run_dir),
        tags={**environment_tags(), "gnnsec.sweep": name, "gnnsec.preset": args.preset},
    )
    callback = MlflowSweepCallback(settings)
    tracker = callback.tracker
    tracker.experiment_id  # noqa: B018  (create the experiment once, here, before any trial)

    def _kill_open() -> None:
        tracker.kill_open()

    atexit.register(_kill_open)
    previous_term = signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))

    import sweeps

    cloudpickle.register_pickle_by_value(sweeps)  # workers need gnnsec installed, not this checkout
    trainable = tune.with_resources(
        trainable_fn or sweep_trainable, {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial}
    )
    mode = init_ray(args)
    log.info("Ray: %s; MLflow: %s (experiment gnnsec/%s); artifacts: %s", mode, uri, name, cache_root)
    try:
        if restore_path:
            log.info("resuming %s", restore_path)
            tuner = tune.Tuner.restore(
                restore_path,
                trainable=trainable,
                resume_unfinished=True,
                resume_errored=False,
                restart_errored=args.retry_failed,
            )
        else:
            plan = make_plan(args)
            if not plan.trials:
                log.error("nothing to run: every sub-sweep was skipped")
                return 2
            ordered = schedule(plan.trials)
            planned = len(ordered)
            log.info("%d trials: %s", len(ordered), plan.counts())
            shrinkage = plan.shrinkage()
            _warn_shrinkage(shrinkage, "plan")
            meta = {"preset": args.preset, "trials": planned, "counts": plan.counts(), "shrinkage": shrinkage}
            _write_meta(storage, name, meta)
            reporter = tune.CLIReporter(
                metric_columns={
                    "backdoor_asr": "ASR before",
                    "defended_asr": "ASR after",
                    "defended_acc": "ACC after",
                },
                parameter_columns={"trial/name": "trial"},
                # node (unlearning) trials report no defended_asr: sorting None values would crash Tune
                **(
                    {}
                    if any(t.config.get("unlearning") for t in ordered)
                    else {"metric": "defended_asr", "mode": "min", "sort_by_metric": True}
                ),
                max_report_frequency=30,
                max_progress_rows=12,
            )
            tuner = tune.Tuner(
                trainable,
                param_space={"trial": tune.grid_search([trial_param(t, args, cache_root) for t in ordered])},
                tune_config=tune.TuneConfig(
                    max_concurrent_trials=args.max_concurrent or None,
                    reuse_actors=True,
                    trial_name_creator=trial_name,
                    trial_dirname_creator=trial_dirname,
                ),
                run_config=tune.RunConfig(
                    name=name,
                    storage_path=storage,
                    failure_config=tune.FailureConfig(max_failures=args.max_failures, fail_fast=False),
                    callbacks=[callback],
                    progress_reporter=reporter,
                    verbose=1,
                ),
            )
        results = tuner.fit()
    finally:
        tracker.kill_open()
        signal.signal(signal.SIGTERM, previous_term)

    finished, failed = results.num_terminated, results.num_errors
    unfinished = max(len(results), planned) - finished - failed
    level = logging.INFO if not failed and not unfinished else logging.ERROR
    log.log(
        level,
        "sweep %s: %d finished, %d failed, %d unfinished; MLflow experiment gnnsec/%s at %s",
        name,
        finished,
        failed,
        unfinished,
        name,
        uri,
    )
    _warn_shrinkage(shrinkage, "summary")
    if failed:
        log.error(
            "%d trial(s) FAILED after %d retries each (see their gnnsec.error tags in MLflow); "
            "re-run them with  python sweeps/full.py --resume --retry-failed --name %s",
            failed,
            args.max_failures,
            name,
        )
    if unfinished:
        log.error("interrupted: continue with  python sweeps/full.py --resume --name %s", name)
    elif args.report:
        _report(settings.experiment, uri, run_dir / "report" / name)
    return 0 if not failed and not unfinished else 1


def _warn_shrinkage(lines: Sequence[str], where: str) -> None:
    """Sub-sweeps that lost methods/datasets or were skipped, at WARNING (the sweep is smaller than declared)."""
    if lines:
        log.warning("%s: %d sub-sweep(s) smaller than declared:\n  %s", where, len(lines), "\n  ".join(lines))


def _meta_path(storage: str, name: str) -> Path | None:
    return None if "://" in storage else Path(storage) / name / "gnnsec_sweep.json"


def _write_meta(storage: str, name: str, meta: dict[str, Any]) -> None:
    import json

    from gnnsec.cache import atomic_write_text

    path = _meta_path(storage, name)
    if path is not None:
        atomic_write_text(path, json.dumps(meta, indent=1))


def _read_meta(storage: str, name: str) -> dict[str, Any]:
    import json

    path = _meta_path(storage, name)
    return json.loads(path.read_text()) if path is not None and path.is_file() else {}


def _report(experiment: str, uri: str, out_dir: Path) -> None:
    try:
        from gnnsec.report import build_report

        written = build_report(experiment=experiment, uri=uri, out_dir=out_dir)
        for kind, paths in written.items():
            log.info("report %s: %s", kind, ", ".join(str(p) for p in paths) or "(none)")
    except Exception:  # the sweep's results are safe in MLflow; a report problem must not hide that
        log.exception("report failed; rerun with: gnnsec report --experiment %s", experiment)


def main(
    argv: Sequence[str] | None = None, trainable_fn: Callable[[dict[str, Any]], None] | None = None
) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.dry_run else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("sweeps").setLevel(logging.INFO)
    from gnnsec.errors import GnnsecError
    from gnnsec.paths import safe_name

    try:
        if args.name is not None:
            safe_name(args.name, "--name")  # it becomes Ray, MLflow and report folder names
        if args.dry_run:
            print(dry_run_text(make_plan(args), args))
            return 0
        return run(args, trainable_fn)
    except GnnsecError as exc:
        print(f"sweeps: error: {exc}", file=sys.stderr)
        return 2
