"""The Ray Tune function trainable: one gnnsec trial, reported back to the driver.

A trial runs ``gnnsec.pipeline.run_trial`` with the shared artifact cache and reports its flat metrics once,
with a checkpoint folder holding what MLflow needs but Tune's result table should not carry: the resolved
config, per-epoch histories and artifacts (per-class accuracy, embeddings for t-SNE). Ray persists the
checkpoint to the run's storage path (shared storage on a cluster), and the driver's callback logs it.
Nothing here talks to MLflow.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("sweeps.trainable")

RESULT_FILE = "result.json"
EMBEDDINGS_FILE = "embeddings.npz"


def trial_payload(result: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Split a TrialResult into a JSON-able payload and the embedding arrays."""
    artifacts = dict(result.artifacts)
    embeddings = artifacts.pop("embeddings", None) or {}
    arrays = {
        k: np.asarray(v, dtype=np.float32 if "clean" in k or "triggered" in k else np.int64)
        for k, v in embeddings.items()
    }
    payload = {
        "config": result.config,
        "metrics": result.metrics,
        "history": result.history,
        "artifacts": artifacts,
    }
    return payload, arrays


def write_checkpoint(folder: Path, payload: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    (folder / RESULT_FILE).write_text(json.dumps(payload, default=_jsonable))
    if arrays:
        np.savez_compressed(folder / EMBEDDINGS_FILE, **arrays)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _ray_node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # not inside Ray (direct call in tests)
        return ""


def sweep_trainable(config: dict[str, Any]) -> None:
    """Tune entry point: ``config["trial"]`` is a spec made by ``sweeps.driver.trial_param``."""
    t_import = time.perf_counter()
    import torch
    from ray import tune

    from gnnsec.cache import ArtifactCache
    from gnnsec.config import TrialConfig
    from gnnsec.pipeline import run_trial

    t_import = time.perf_counter() - t_import  # > 0 only in the first trial of a (reused) actor
    spec = config["trial"]
    torch.set_num_threads(max(1, int(spec.get("threads", 1))))
    t0 = time.perf_counter()
    cfg = TrialConfig.from_dict(spec["config"])
    cache = ArtifactCache(spec["cache_root"]) if spec.get("cache_root") else ArtifactCache()
    result = run_trial(cfg, cache)
    metrics = {k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)}
    metrics["trial_wall_seconds"] = time.perf_counter() - t0
    metrics["trial_import_seconds"] = t_import
    metrics["cache_hits"] = float(cache.hits)
    metrics["cache_misses"] = float(cache.misses)
    result.metrics = metrics
    payload, arrays = trial_payload(result)
    payload["host"] = os.uname().nodename
    payload["ray_node_id"] = _ray_node_id()
    with tempfile.TemporaryDirectory(prefix="gnnsec-trial-") as tmp:
        write_checkpoint(Path(tmp), payload, arrays)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
