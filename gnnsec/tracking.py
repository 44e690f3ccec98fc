"""MLflow tracking of sweeps, written by the sweep driver only.

Trials never talk to MLflow: they report flat metrics (and a checkpoint folder with their per-epoch history
and artifacts) to Ray Tune, and the driver's Tune callback (``sweeps/callbacks.py``) turns each trial into
one MLflow run through :class:`TrialTracker`. One writer means concurrent trials never contend for the
store, and a local SQLite file is enough on one machine.

- Store: ``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<run dir>/mlflow.db`` with artifacts under
  ``<run dir>/mlartifacts``; the run dir is ``$GNNSEC_RUN_DIR`` or ``./runs``.
- One experiment per sweep, one run per trial. A run is keyed by the Ray trial id (tag
  ``gnnsec.trial_id``): a retried or resumed trial reuses its run instead of creating a second one, and
  every run ends FINISHED, FAILED or (sweep interrupted) KILLED, never stuck in RUNNING.
- Every experiment is tagged ``mlflow.experimentKind = custom_model_development`` so the MLflow 3 UI opens
  it in its model-training view (runs table), not the GenAI traces overview; every run logs its dataset as
  an MLflow dataset input (name, digest of the data config, source = the dataset's registry name), so the
  runs table's Dataset column is filled.

The CLI commands that use this module (``gnnsec ui``, ``gnnsec sweep``, ``gnnsec report``) live in
``gnnsec/cli.py``; the report (``gnnsec/report``) reads what this module writes and never the reverse.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gnnsec.provenance import environment_tags, git_commit

__all__ = ["TrackerSettings", "TrialTracker", "environment_tags", "git_commit"]  # + the helpers below
log = logging.getLogger(__name__)

RUN_DIR_ENV = "GNNSEC_RUN_DIR"
TRIAL_ID_TAG = "gnnsec.trial_id"
ATTEMPTS_TAG = "gnnsec.attempts"
SUBSWEEP_TAG = "gnnsec.subsweep"
FACTOR_TAG = "gnnsec.factor"
CONFIG_HASH_TAG = "gnnsec.config_hash"
ERROR_TAG = "gnnsec.error"
# MLflow 3 opens an experiment in the view its kind names; this one is the runs/metrics (training) view.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
DATASET_CONTEXT_TAG = "mlflow.data.context"  # mlflow.utils.mlflow_tags.MLFLOW_DATASET_CONTEXT
# Saved runs-table views: the MLflow UI loads the experiment tag ``mlflow.sharedViewState.<key>`` (JSON view
# state) when the runs page is opened with ``?viewStateShareKey=<key>`` (its own "Share" button does this).
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
RESULTS_VIEW = "gnnsec-results"
RESULTS_BY_SUBSWEEP_VIEW = "gnnsec-by-subsweep"
RESULT_METRICS = ("backdoor_asr", "backdoor_acc", "defended_asr", "defended_acc", "clean_asr", "clean_acc")
# MLflow's per-request limits (mlflow.utils.validation): 1000 metrics, 100 params/tags per log_batch.
_METRICS_PER_BATCH = 1000
_PARAMS_PER_BATCH = 100
_MAX_PARAM_LEN = 6000
_MAX_TAG_LEN = 8000


# ---- where things go -----------------------------------------------------------------------------------
def default_run_dir() -> Path:
    """The project's run folder: ``$GNNSEC_RUN_DIR`` or ``./runs`` (MLflow store, Ray results, report)."""
    return Path(os.environ.get(RUN_DIR_ENV, "runs")).expanduser().resolve()


def tracking_uri(run_dir: str | Path | None = None) -> str:
    """``$MLFLOW_TRACKING_URI``, else a SQLite store in the run folder."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    folder = Path(run_dir).expanduser().resolve() if run_dir else default_run_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def artifact_location(uri: str, run_dir: str | Path | None = None) -> str | None:
    """Artifact root for new experiments: ``<run dir>/mlartifacts`` for a local store; the server's own
    (proxied) location for a tracking server."""
    if uri.startswith(("http://", "https://", "databricks")):
        return None
    folder = Path(run_dir).expanduser().resolve() if run_dir else default_run_dir()
    return (folder / "mlartifacts").as_uri()


# ---- small helpers -------------------------------------------------------------------------------------
def flatten(tree: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; empty mappings and lists stay as values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name, sep))
        else:
            out[name] = value
    return out


def config_hash(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)
    return out


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ---- the driver-side writer ----------------------------------------------------------------------------
@dataclass
class TrackerSettings:
    """Everything a :class:`TrialTracker` needs; plain data, so Ray can pickle the callback holding it."""

    uri: str
    experiment: str
    artifact_location: str | None = None
    tags: dict[str, str] = field(default_factory=dict)  # added to every run (sweep, preset, commit, ...)


class TrialTracker:
    """One MLflow run per trial, keyed by trial id; all writes go through ``log_batch``."""

    def __init__(self, settings: TrackerSettings) -> None:
        self.settings = settings
        self._client: Any = None
        self._experiment_id: str | None = None
        self._runs: dict[str, str] = {}  # trial id -> run id

    def __getstate__(self) -> dict[str, Any]:  # a live client/connection never travels with the callback
        return {"settings": self.settings, "_client": None, "_experiment_id": None, "_runs": {}}

    # ---- store ---------------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.settings.uri)
        return self._client

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            self._experiment_id = ensure_experiment(
                self.client, self.settings.experiment, self.settings.artifact_location
            )
        return self._experiment_id

    def run_id(self, trial_id: str) -> str | None:
        """The run of a trial (searching the store, so a resumed driver finds runs of the first one)."""
        if trial_id in self._runs:
            return self._runs[trial_id]
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{TRIAL_ID_TAG}` = '{trial_id}'", max_results=5
        )
        if runs:
            if len(runs) > 1:
                log.warning("trial %s has %d MLflow runs; using the oldest", trial_id, len(runs))
            run = min(runs, key=lambda r: r.info.start_time)
            self._runs[trial_id] = run.info.run_id
            return run.info.run_id
        return None

    # ---- lifecycle -----------------------------------------------------------------------------------
    def start(
        self,
        trial_id: str,
        name: str,
        config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Open (or re-open, for a retried/resumed trial) the trial's run; log params and tags once."""
        from mlflow.entities import Param, RunTag

        run_id = self.run_id(trial_id)
        if run_id is not None:
            run = self.client.get_run(run_id)
            attempts = int(run.data.tags.get(ATTEMPTS_TAG, "1")) + 1
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, ATTEMPTS_TAG, str(attempts))
            log.info("trial %s: reusing MLflow run %s (attempt %d)", trial_id, run_id, attempts)
            return run_id
        all_tags = {
            **self.settings.tags,
            **(tags or {}),
            TRIAL_ID_TAG: trial_id,
            ATTEMPTS_TAG: "1",
        }
        if config is not None:
            all_tags[CONFIG_HASH_TAG] = config_hash(config)
        run = self.client.create_run(self.experiment_id, tags={"mlflow.runName": name}, run_name=name)
        run_id = run.info.run_id
        self._runs[trial_id] = run_id
        params = [
            Param(k, _param_value(v))
            for k, v in sorted(flatten(config or {}).items())
            if not k.startswith("_")
        ]
        tag_list = [RunTag(k, str(v)[:_MAX_TAG_LEN]) for k, v in sorted(all_tags.items())]
        for chunk in _chunks(params, _PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=chunk)
        for chunk in _chunks(tag_list, _PARAMS_PER_BATCH):
            self.client.log_batch(run_id, tags=chunk)
        dataset = dataset_input(config or {})
        if dataset is not None:
            self.client.log_inputs(run_id, datasets=[dataset])
        return run_id

    def set_tags(self, trial_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        run_id = self._require(trial_id)
        items = [RunTag(k, str(v)[:_MAX_TAG_LEN]) for k, v in tags.items()]
        for chunk in _chunks(items, _PARAMS_PER_BATCH):
            self.client.log_batch(run_id, tags=chunk)

    def log_metrics(self, trial_id: str, metrics: Mapping[str, Any], step: int = 0) -> int:
        """Log the numeric values of ``metrics`` at ``step`` in batches; return how many were logged."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, step) for k, v in _numeric(metrics).items()]
        self._log_metric_items(trial_id, items)
        return len(items)

    def log_history(self, trial_id: str, history: Mapping[str, Sequence[Mapping[str, Any]]]) -> int:
        """Per-epoch histories ``{phase: [{"epoch": e, "loss": ...}, ...]}`` as metrics ``phase/key`` with
        ``step = epoch``, in batches of 1000."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = []
        for phase, rows in history.items():
            for i, row in enumerate(rows or []):
                step = int(row.get("epoch", i)) if isinstance(row, Mapping) else i
                if not isinstance(row, Mapping):
                    continue
                for key, value in _numeric(row).items():
                    if key != "epoch":
                        items.append(Metric(f"{phase}/{key}", value, now, step))
        self._log_metric_items(trial_id, items)
        return len(items)

    def _log_metric_items(self, trial_id: str, items: list[Any]) -> None:
        run_id = self._require(trial_id)
        for chunk in _chunks(items, _METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=chunk)

    def log_dict(self, trial_id: str, payload: Mapping[str, Any], name: str) -> None:
        self.client.log_dict(self._require(trial_id), dict(payload), name)

    def log_text(self, trial_id: str, text: str, name: str) -> None:
        self.client.log_text(self._require(trial_id), text, name)

    def log_file(self, trial_id: str, path: str | Path, folder: str | None = None) -> None:
        self.client.log_artifact(self._require(trial_id), str(path), folder)

    def finish(self, trial_id: str, status: str = "FINISHED") -> None:
        run_id = self._require(trial_id)
        self.client.set_terminated(run_id, status=status)

    def fail(self, trial_id: str, error: str) -> None:
        """Mark the run FAILED with the error (a tag with its last line, the full text as an artifact)."""
        run_id = self.run_id(trial_id)
        if run_id is None:  # failed before it ever started (e.g. placement): still one run per trial
            run_id = self.start(trial_id, trial_id)
        last = [line for line in error.strip().splitlines() if line.strip()][-1:] or ["error"]
        self.client.set_tag(run_id, ERROR_TAG, last[0][:_MAX_TAG_LEN])
        self.client.log_text(run_id, error, "error.txt")
        self.client.set_terminated(run_id, status="FAILED")

    def kill_open(self) -> int:
        """Mark every run of this experiment still RUNNING as KILLED (sweep interrupted); return how many."""
        try:
            runs = self.client.search_runs(
                [self.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=5000
            )
        except Exception:  # store gone at interpreter exit: nothing more we can do
            log.exception("could not list open MLflow runs")
            return 0
        for run in runs:
            self.client.set_terminated(run.info.run_id, status="KILLED")
        if runs:
            log.warning("marked %d unfinished MLflow runs KILLED", len(runs))
        return len(runs)

    def _require(self, trial_id: str) -> str:
        run_id = self.run_id(trial_id)
        if run_id is None:
            raise KeyError(f"trial {trial_id} has no MLflow run (start() it first)")
        return run_id


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, list | dict | tuple) else str(value)
    return text[:_MAX_PARAM_LEN]


def ensure_experiment(
    client: Any, name: str, artifact_location: str | None = None, tags: Mapping[str, str] | None = None
) -> str:
    """The id of experiment ``name``, created (once) if missing; a deleted one is restored. It always carries
    ``mlflow.experimentKind = custom_model_development`` (also added to experiments made by older code)."""
    all_tags = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, **dict(tags or {})}
    all_tags.update(
        {SHARED_VIEW_PREFIX + k: json.dumps(v, sort_keys=True) for k, v in results_views().items()}
    )
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location, tags=all_tags)
        except Exception:  # created concurrently by another driver
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    save_results_views(client, exp.experiment_id, exp.tags)
    return exp.experiment_id


def results_views() -> dict[str, dict[str, Any]]:
    """Runs-table states for the MLflow UI: ACC/ASR columns per run, and the same grouped by sub-sweep
    (rows aggregate to the mean over each sub-sweep's runs, expandable)."""
    columns = [
        "attributes.`Dataset`",
        f"tags.`{SUBSWEEP_TAG}`",
        "params.`attack.name`",
        "params.`defense.name`",
    ]
    columns += [f"metrics.`{m}`" for m in RESULT_METRICS]
    base = {"selectedColumns": columns, "orderByKey": "attributes.start_time", "orderByAsc": False}
    group = {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": SUBSWEEP_TAG}]}
    return {RESULTS_VIEW: base, RESULTS_BY_SUBSWEEP_VIEW: {**base, "groupBy": group}}


def save_results_views(client: Any, experiment_id: str, existing: Mapping[str, str] | None = None) -> None:
    """Store :func:`results_views` as the experiment's shared view states (idempotent)."""
    for key, state in results_views().items():
        value = json.dumps(state, sort_keys=True)
        if (existing or {}).get(SHARED_VIEW_PREFIX + key) != value:
            client.set_experiment_tag(experiment_id, SHARED_VIEW_PREFIX + key, value)


def dataset_input(config: Mapping[str, Any]) -> Any:
    """The trial's dataset as an MLflow ``DatasetInput`` (None without a ``data`` section).

    Name: the dataset's registry name (``AIDS``); digest: hash of the whole ``data`` section (feature mode,
    split seed, holding rate: what makes two runs see the same graphs); source: ``gnnsec:<name>`` with the
    data section as JSON; context tag ``train``. The MLflow UI shows it in the runs table's Dataset column.
    """
    data = config.get("data") if isinstance(config, Mapping) else None
    if not isinstance(data, Mapping) or not data.get("dataset"):
        return None
    from mlflow.entities import Dataset, DatasetInput, InputTag

    name = str(data["dataset"])
    text = json.dumps(dict(data), sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    source = json.dumps({"uri": f"gnnsec:{name}", "data": json.loads(text)}, sort_keys=True)
    dataset = Dataset(name=name, digest=digest, source_type="gnnsec", source=source)
    return DatasetInput(dataset, tags=[InputTag(DATASET_CONTEXT_TAG, "train")])
