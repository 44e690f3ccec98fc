"""Runs of a sweep as a pandas DataFrame: one row per trial, params parsed, duplicates removed."""

from __future__ import annotations

import json
import logging
from typing import Any

import pandas as pd

from gnnsec.tracking import CONFIG_HASH_TAG, FACTOR_TAG, SUBSWEEP_TAG, tracking_uri

log = logging.getLogger(__name__)


def latest_experiment(uri: str | None = None, prefix: str = "gnnsec/") -> str | None:
    """Name of the most recently created experiment whose name starts with ``prefix``."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri or tracking_uri())
    exps = [e for e in client.search_experiments() if e.name.startswith(prefix)]
    return max(exps, key=lambda e: e.creation_time or 0).name if exps else None


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
    (parsed back to numbers/booleans), ``tags.*``, ``subsweep``, ``factor``; a config run twice (e.g. a
    sweep repeated into the same experiment) is kept once, its latest run."""
    import mlflow

    uri = uri or tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment = experiment or latest_experiment(uri)
    if experiment is None:
        return pd.DataFrame()
    df = mlflow.search_runs(experiment_names=[experiment], output_format="pandas")
    if df.empty:
        return df
    if status:
        df = df[df["status"] == status]
    for col in [c for c in df.columns if c.startswith("params.")]:
        df[col] = df[col].map(_parse)
    df = df.sort_values("start_time")
    if f"tags.{CONFIG_HASH_TAG}" in df:
        df = df.drop_duplicates(subset=[f"tags.{CONFIG_HASH_TAG}", f"tags.{SUBSWEEP_TAG}"], keep="last")
    df["subsweep"] = df.get(f"tags.{SUBSWEEP_TAG}", pd.Series("", index=df.index)).fillna("")
    df["factor"] = df.get(f"tags.{FACTOR_TAG}", pd.Series(None, index=df.index))
    return df.reset_index(drop=True)
