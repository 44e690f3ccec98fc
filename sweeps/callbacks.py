"""Driver-side Ray Tune callback that records every trial as one MLflow run (gnnsec.tracking).

Runs on the driver only, so a SQLite store is never written by two processes. Lifecycle:
``on_trial_start`` opens (or, for a retry or a resumed sweep, re-opens) the run keyed by the trial id;
``on_trial_result`` logs intermediate results (per-epoch reports, e.g. the tuner's) at their iteration;
``on_trial_complete`` logs final metrics, per-epoch histories (log_batch) and artifacts from the trial's
checkpoint, then FINISHED; ``on_trial_error`` marks it FAILED with the error; ``on_experiment_end`` (and
the driver's signal/atexit handlers) mark runs still open KILLED.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.result import AUTO_RESULT_KEYS

from gnnsec.tracking import FACTOR_TAG, SUBSWEEP_TAG, TrackerSettings, TrialTracker
from sweeps.trainable import EMBEDDINGS_FILE, RESULT_FILE

log = logging.getLogger("sweeps.callbacks")

_SKIP = set(AUTO_RESULT_KEYS) | {"done", "trial_id", "experiment_tag", "should_checkpoint", "hostname"}


def result_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The trial's own numeric metrics from a Tune result (Tune's bookkeeping keys removed)."""
    out = {}
    for key, value in result.items():
        if key in _SKIP or key.startswith("config") or isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[key] = float(value)
    return out


class MlflowSweepCallback(Callback):
    """One MLflow run per Tune trial; see the module docstring."""

    def __init__(self, settings: TrackerSettings, log_intermediate: bool = False) -> None:
        self.tracker = TrialTracker(settings)
        self.log_intermediate = log_intermediate
        self.logged_steps: dict[str, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"tracker": self.tracker, "log_intermediate": self.log_intermediate, "logged_steps": {}}

    # ---- helpers -------------------------------------------------------------------------------------
    @staticmethod
    def spec(trial: Any) -> dict[str, Any]:
        return dict(trial.config.get("trial", {}))

    def _safe(self, what: str, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # tracking must never stop the sweep
            log.exception("MLflow %s failed", what)

    # ---- Tune hooks ----------------------------------------------------------------------------------
    def setup(self, **info: Any) -> None:
        self._safe("setup", lambda: self.tracker.experiment_id)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safe("start", self._start, trial)

    def _start(self, trial: Any) -> None:
        spec = self.spec(trial)
        tags = {SUBSWEEP_TAG: spec.get("subsweep", ""), "gnnsec.trial_name": spec.get("name", "")}
        if spec.get("factor"):
            tags[FACTOR_TAG] = spec["factor"]
        config = dict(spec.get("config") or {})
        tuned = {k: v for k, v in trial.config.items() if k != "trial"}
        if tuned:  # values chosen by a search algorithm (the tuner) next to the fixed trial config
            config["tuned"] = tuned
        self.tracker.start(trial.trial_id, spec.get("name") or str(trial), config, tags)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if not self.log_intermediate:
            return
        step = int(result.get("training_iteration", 0))
        if step <= self.logged_steps.get(trial.trial_id, 0):
            return
        self.logged_steps[trial.trial_id] = step
        self._safe("result", self.tracker.log_metrics, trial.trial_id, result_metrics(result), step)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        err = _error_text(trial)
        self._safe("recover", self.tracker.set_tags, trial.trial_id, {"gnnsec.last_retry_error": err[-500:]})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safe("complete", self._complete, trial)

    def _complete(self, trial: Any) -> None:
        tid = trial.trial_id
        result = dict(trial.last_result or {})
        final = result_metrics(result)
        if isinstance(result.get("time_total_s"), int | float):
            final["ray_time_total_s"] = float(result["time_total_s"])  # Tune's own time of the trial
        self.tracker.log_metrics(tid, final, int(result.get("training_iteration", 0)))
        tags = {
            "gnnsec.host": result.get("hostname", ""),
            "gnnsec.node_ip": result.get("node_ip", ""),
            "gnnsec.worker_pid": result.get("pid", ""),
        }
        if trial.checkpoint is not None:
            with tempfile.TemporaryDirectory(prefix="gnnsec-ckpt-") as tmp:
                folder = Path(trial.checkpoint.to_directory(tmp))
                self._log_checkpoint(tid, folder, tags)
        self.tracker.set_tags(tid, {k: v for k, v in tags.items() if v})
        self.tracker.finish(tid, "FINISHED")

    def _log_checkpoint(self, tid: str, folder: Path, tags: dict[str, Any]) -> None:
        result_file = folder / RESULT_FILE
        if result_file.is_file():
            payload = json.loads(result_file.read_text())
            self.tracker.log_history(tid, payload.get("history") or {})
            self.tracker.log_dict(tid, payload.get("config") or {}, "config.json")
            for name, value in (payload.get("artifacts") or {}).items():
                self.tracker.log_dict(tid, {name: value}, f"{name}.json")
            if payload.get("host"):
                tags["gnnsec.host"] = payload["host"]
            if payload.get("ray_node_id"):
                tags["gnnsec.ray_node"] = payload["ray_node_id"]
        if (folder / EMBEDDINGS_FILE).is_file():
            self.tracker.log_file(tid, folder / EMBEDDINGS_FILE)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safe("error", self.tracker.fail, trial.trial_id, _error_text(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._safe("end", self.tracker.kill_open)


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    try:
        if path and Path(path).is_file():
            return Path(path).read_text()
    except OSError:
        pass
    try:
        err = trial.get_error()
    except Exception:
        err = None
    return str(err) if err else "trial failed (no error text)"
