"""Runs of a sweep as a pandas DataFrame (one row per trial, params parsed), and their artifacts.

Everything the report shows comes from here: the tracking store is the only input (any tracking URI).
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gnnsec.tracking import CONFIG_HASH_TAG, FACTOR_TAG, SUBSWEEP_TAG, tracking_uri

log = logging.getLogger(__name__)


def _client(uri: str | None) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri or tracking_uri())


def latest_experiment(uri: str | None = None, prefix: str = "gnnsec/") -> str | None:
    """Name of the most recently created experiment whose name starts with ``prefix``."""
    exps = [e for e in _client(uri).search_experiments() if e.name.startswith(prefix)]
    return max(exps, key=lambda e: e.creation_time or 0).name if exps else None


def experiment_names(uri: str | None = None) -> set[str]:
    return {e.name for e in _client(uri).search_experiments()}


def experiment_id(uri: str | None = None, name: str | None = None) -> str | None:
    """Id of experiment ``name`` (default: the latest gnnsec one), None when there is none."""
    name = name or latest_experiment(uri)
    exp = _client(uri).get_experiment_by_name(name) if name else None
    return exp.experiment_id if exp is not None else None


def _parse(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if value == "None":
        return None
    try:
        return json.loads(value)
    except (ValueError, TypeError):
        return value


def load_runs(
    experiment: str | None = None, uri: str | None = None, status: str | None = "FINISHED"
) -> pd.DataFrame:
    """Runs of ``experiment`` (default: the latest gnnsec one) with columns ``metrics.*``, ``params.*``
    (parsed back to numbers/booleans), ``tags.*``, ``subsweep``, ``factor``, ``run_id``, ``status``.
    ``status=None`` keeps every run (for trial counts); otherwise a config run twice (e.g. a sweep repeated
    into the same experiment) is kept once, its latest run."""
    import mlflow

    uri = uri or tracking_uri()
    experiment = experiment or latest_experiment(uri)
    if experiment is None:
        return pd.DataFrame()
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        df = mlflow.search_runs(experiment_names=[experiment], output_format="pandas", max_results=100000)
    finally:
        mlflow.set_tracking_uri(previous)
    if df.empty:
        return df
    if status:
        df = df[df["status"] == status]
    for col in [c for c in df.columns if c.startswith("params.")]:
        df[col] = df[col].map(_parse)
    df = df.sort_values("start_time")
    if status and f"tags.{CONFIG_HASH_TAG}" in df:
        df = df.drop_duplicates(subset=[f"tags.{CONFIG_HASH_TAG}", f"tags.{SUBSWEEP_TAG}"], keep="last")
    df["subsweep"] = df.get(f"tags.{SUBSWEEP_TAG}", pd.Series("", index=df.index)).fillna("")
    df["factor"] = df.get(f"tags.{FACTOR_TAG}", pd.Series(None, index=df.index))
    return df.reset_index(drop=True)


def subsweep(runs: pd.DataFrame, name: str) -> pd.DataFrame:
    """The runs of one sub-sweep (empty frame when there are none)."""
    if runs.empty or "subsweep" not in runs:
        return runs.iloc[0:0]
    return runs[runs["subsweep"] == name]


def param(df: pd.DataFrame, key: str) -> pd.Series:
    """``params.<key>`` as a column (NaN when no run logged it)."""
    col = f"params.{key}"
    return df[col] if col in df else pd.Series(np.nan, index=df.index, dtype=object)


def metric(df: pd.DataFrame, key: str) -> pd.Series:
    col = f"metrics.{key}"
    return df[col].astype(float) if col in df else pd.Series(np.nan, index=df.index, dtype=float)


# ---- artifacts ------------------------------------------------------------------------------------------
class ArtifactReader:
    """Reads a run's artifacts (JSON, npz) and metric histories from the store; one client, cached."""

    def __init__(self, uri: str | None = None) -> None:
        self.uri = uri or tracking_uri()
        self._client_obj: Any = None

    @property
    def client(self) -> Any:
        if self._client_obj is None:
            self._client_obj = _client(self.uri)
        return self._client_obj

    def _download(self, run_id: str, name: str, dst: Path) -> Path | None:
        try:
            return Path(self.client.download_artifacts(run_id, name, str(dst)))
        except Exception:  # missing artifact: the figure shows what exists and says what does not
            log.debug("run %s has no artifact %s", run_id, name, exc_info=True)
            return None

    def json(self, run_id: str, name: str) -> dict[str, Any] | None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="gnnsec-art-") as tmp:
            path = self._download(run_id, name, Path(tmp))
            return json.loads(path.read_text()) if path and path.is_file() else None

    def npz(self, run_id: str, name: str) -> dict[str, np.ndarray] | None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="gnnsec-art-") as tmp:
            path = self._download(run_id, name, Path(tmp))
            if not path or not path.is_file():
                return None
            with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as data:
                return {k: data[k] for k in data.files}

    def history(self, run_id: str, key: str) -> pd.DataFrame:
        """Metric history of ``key`` as columns step, value (empty when not logged)."""
        try:
            rows = self.client.get_metric_history(run_id, key)
        except Exception:
            rows = []
        frame = pd.DataFrame([(m.step, m.value) for m in rows], columns=["step", "value"])
        return frame.drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)
