"""Faults, tested (issue 9.8): a corrupted cached model heals itself; killed workers and drivers lose nothing.

The sweep-level test (slow, run by scripts/test.sh through pytest) kills a trial worker mid-trial and then
the driver mid-sweep, resumes, and checks that every trial is exactly once FINISHED in MLflow and that the
killed driver's embedded Ray left no process behind once the next driver started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gnnsec.cache import ArtifactCache
from gnnsec.config import TrialConfig

ROOT = Path(__file__).resolve().parents[1]
FAULTS = ROOT / "tests" / "helpers" / "sweep_with_faults.py"
FULL = ROOT / "sweeps" / "full.py"


def test_truncated_cached_model_is_rebuilt_and_the_trial_finishes(mirror, tmp_path, caplog) -> None:
    from gnnsec.pipeline import run_trial

    cfg = TrialConfig.from_dict(
        {
            "data": {"dataset": "MUTAG"},
            "model": {"hidden": 16},
            "train": {"epochs": 2},
            "attack": {"name": "sub_ba"},
        }
    )
    cache = ArtifactCache(tmp_path / "artifacts")
    first = run_trial(cfg, cache).metrics
    models = sorted((tmp_path / "artifacts").glob("*/*/model.pt"))
    assert len(models) == 2  # the clean and the backdoored model
    for model in models:
        with open(model, "r+b") as fh:
            fh.truncate(100)  # what used to give "PytorchStreamReader failed reading zip archive" forever
    with caplog.at_level("WARNING", logger="gnnsec.cache"):
        again = run_trial(cfg, ArtifactCache(tmp_path / "artifacts")).metrics
    assert again["backdoor_cached"] == 0.0  # rebuilt, not served
    assert again["clean_acc"] == first["clean_acc"] and again["backdoor_asr"] == first["backdoor_asr"]
    assert sum("corrupt" in r.getMessage() for r in caplog.records) == 2
    assert len(list((tmp_path / "artifacts" / ".quarantine").iterdir())) == 2
    third = run_trial(cfg, ArtifactCache(tmp_path / "artifacts")).metrics
    assert third["backdoor_cached"] == 1.0  # and the healed entry is served again


def _wait_marker(markers: Path, seen: set[int], proc: subprocess.Popen, log: Path) -> int:
    """Pid of the next trial worker that paused in the marked trial."""
    deadline = time.time() + 300
    while time.time() < deadline:
        assert proc.poll() is None, log.read_text()[-4000:]
        found = (
            {int(p.name.split("-")[1]) for p in markers.glob("paused-*")} - seen
            if markers.is_dir()
            else set()
        )
        if found:
            return found.pop()
        time.sleep(0.5)
    raise AssertionError("no trial paused in time:\n" + log.read_text()[-4000:])


@pytest.mark.slow
def test_killed_worker_and_killed_driver_resume_to_exactly_once(mirror, tmp_path) -> None:
    import mlflow

    from sweeps.embedded_ray import _alive

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_ADDRESS"))}
    env.update(GNNSEC_DATA_MIRROR=str(mirror), GNNSEC_CACHE_DIR=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    run_dir, markers, log = tmp_path / "runs", tmp_path / "markers", tmp_path / "sweep.log"
    where = [
        "--run-dir",
        str(run_dir),
        "--cache-dir",
        str(tmp_path / "art"),
        "--num-cpus",
        "2",
        "--no-report",
    ]
    plan = ["--preset", "smoke", "--only", "injection_ratio", "--name", "faults", "--max-concurrent", "1"]
    pause = ["--pause-in", "injection_ratio=0.1", "--pause-seconds", "300", "--marker-dir", str(markers)]
    with open(log, "a") as out:
        cmd = [sys.executable, str(FAULTS), *pause, *where, *plan, "--max-failures", "3"]
        driver = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            worker = _wait_marker(markers, set(), driver, log)
            os.kill(worker, signal.SIGKILL)  # a trial worker dies mid-trial: Tune retries the trial
            _wait_marker(markers, {worker}, driver, log)
            record = json.loads((tmp_path / "cache" / "embedded-ray" / f"{driver.pid}.json").read_text())
            driver.send_signal(signal.SIGKILL)  # and then the driver dies mid-sweep
            driver.wait(60)
        finally:
            if driver.poll() is None:
                driver.kill()
        time.sleep(3)
        left_behind = [p for p in record["procs"] if _alive(p["pid"], p["created"])]
        resumed = subprocess.run(
            [sys.executable, str(FULL), *where, "--resume", "--name", "faults"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            timeout=600,
        )
    assert resumed.returncode == 0, log.read_text()[-4000:]
    # the next driver stopped what the killed one's embedded Ray left running (ray::DashboardAgent, ...)
    assert not [p for p in record["procs"] if _alive(p["pid"], p["created"])], left_behind

    mlflow.set_tracking_uri(f"sqlite:///{run_dir / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["gnnsec/faults"])
    assert len(runs) == 2 and runs["tags.gnnsec.trial_id"].is_unique, runs  # each trial exactly once
    assert set(runs["status"]) == {"FINISHED"}, runs["status"].tolist()
    attempts = dict(zip(runs["tags.mlflow.runName"], runs["tags.gnnsec.attempts"].astype(int)))
    killed = next(n for n in attempts if "injection_ratio=0.1" in n)
    assert attempts[killed] >= 2  # retried after the worker was killed, finished after the resume
    # Tune saves its experiment state at most every 10 s, so a trial that finished just before the driver
    # died may run again on --resume; it reuses its MLflow run (exactly once above), never a second one.
