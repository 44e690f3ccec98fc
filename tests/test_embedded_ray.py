"""A SIGKILLed driver's embedded-Ray processes are stopped by recorded pid on the next start (issue 9.8).

Ray itself is not needed to test the bookkeeping: a stand-in driver starts a child that ignores SIGTERM
(like ``ray::DashboardAgent``), records it, and is killed; the next ``reap_stale`` must stop the child and
nothing else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
DRIVER = """
import subprocess, sys, time
sys.path.insert(0, {root!r})
from sweeps import embedded_ray
embedded_ray.REFRESH_SECONDS = (0.2,)
agent = subprocess.Popen(["bash", "-c", "trap '' TERM; while true; do sleep 1; done"])
embedded_ray.record()
time.sleep(0.5)
print(agent.pid, flush=True)
time.sleep(600)
"""


def test_leftovers_of_a_killed_driver_are_stopped_and_only_they(tmp_path: Path, monkeypatch) -> None:
    from sweeps import embedded_ray

    monkeypatch.setenv("GNNSEC_CACHE_DIR", str(tmp_path))
    env = {**os.environ, "GNNSEC_CACHE_DIR": str(tmp_path)}
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER.format(root=str(ROOT))], env=env, stdout=subprocess.PIPE, text=True
    )
    bystander = subprocess.Popen(["sleep", "600"])  # ours, but never recorded: must survive
    try:
        agent = int(driver.stdout.readline())
        record = json.loads((tmp_path / "embedded-ray" / f"{driver.pid}.json").read_text())
        assert agent in {p["pid"] for p in record["procs"]}
        assert embedded_ray.reap_stale() == []  # the driver is alive: its Ray is not ours to stop
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
        time.sleep(0.3)
        assert psutil.pid_exists(agent)  # the leftover, re-parented and deaf to SIGTERM
        assert agent in embedded_ray.reap_stale(grace=1.0)
        assert not psutil.pid_exists(agent) or psutil.Process(agent).status() == psutil.STATUS_ZOMBIE
        assert bystander.poll() is None
        assert not list((tmp_path / "embedded-ray").glob("*.json"))
    finally:
        for p in (driver, bystander):
            if p.poll() is None:
                p.kill()
        if psutil.pid_exists(agent := locals().get("agent", -1)) and agent > 0:
            os.kill(agent, signal.SIGKILL)


def test_a_clean_exit_leaves_no_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sweeps import embedded_ray

    monkeypatch.setenv("GNNSEC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(embedded_ray, "REFRESH_SECONDS", (0.1, 0.3))
    path = embedded_ray.record()
    assert path.is_file()
    embedded_ray.forget()
    time.sleep(0.6)  # the background refresher must not write it back
    assert not path.exists()
