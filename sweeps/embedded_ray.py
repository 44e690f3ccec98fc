"""The processes of the embedded Ray a driver starts, recorded by pid, so a killed driver leaves nothing behind.

A driver killed with SIGKILL cannot shut its embedded Ray down. Ray's GCS and raylet notice and exit, but
``ray::DashboardAgent`` and ``ray::RuntimeEnvAgent`` (children of the raylet, re-parented to init, deaf to
SIGTERM) keep running. So the driver records every process it started (its descendants, with their start
times, refreshed while Ray brings up its agents) in ``<cache dir>/embedded-ray/<driver pid>.json``, and the
next driver that starts an embedded Ray first stops the recorded processes of drivers that are gone:
SIGTERM, then SIGKILL after a grace period. Only recorded pids whose start time still matches are touched
(never processes found by name, never another live driver's). Without a next start, stop them by hand with
the pids in that file (``kill -9 PID``); ``ray stop`` would also stop every other Ray of the machine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("sweeps")
REFRESH_SECONDS = (1.0, 5.0, 20.0, 60.0)  # Ray starts its agents and idle workers after ray.init returns
_lock = threading.Lock()
_done = threading.Event()  # set by forget(): the refresher must not write the record again


def record_dir() -> Path:
    from gnnsec.config import default_cache_dir

    return default_cache_dir() / "embedded-ray"


def _snapshot() -> dict[str, Any]:
    import psutil

    me = psutil.Process()
    procs = []
    for p in me.children(recursive=True):
        try:
            procs.append({"pid": p.pid, "created": p.create_time(), "name": p.name()})
        except psutil.Error:
            continue
    return {"driver": me.pid, "driver_created": me.create_time(), "procs": procs}


def _write(path: Path, known: dict[int, dict[str, Any]]) -> None:
    snap = _snapshot()
    for p in snap["procs"]:
        known.setdefault(p["pid"], p)
    snap["procs"] = list(known.values())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # atomic: a reader sees the old or the new record
    tmp.write_text(json.dumps(snap, indent=1))
    os.replace(tmp, path)


def record() -> Path:
    """Record this driver's child processes now and a few times more in the background; return the file."""
    path = record_dir() / f"{os.getpid()}.json"
    known: dict[int, dict[str, Any]] = {}
    _done.clear()
    with _lock:
        _write(path, known)

    def refresh() -> None:
        start = time.monotonic()
        for at in REFRESH_SECONDS:
            if _done.wait(max(0.0, at - (time.monotonic() - start))):
                return
            with _lock:
                if _done.is_set():
                    return
                try:
                    _write(path, known)
                except OSError:
                    return

    threading.Thread(target=refresh, name="embedded-ray-record", daemon=True).start()
    return path


def forget() -> None:
    """After a clean ``ray.shutdown()``: nothing of ours is left to stop."""
    with _lock:
        _done.set()
        (record_dir() / f"{os.getpid()}.json").unlink(missing_ok=True)


def _alive(pid: int, created: float) -> Any:
    import psutil

    try:
        p = psutil.Process(pid)
        return p if abs(p.create_time() - created) < 0.05 and p.status() != psutil.STATUS_ZOMBIE else None
    except psutil.Error:
        return None


def reap_stale(grace: float = 3.0) -> list[int]:
    """Stop the recorded processes of embedded Rays whose driver is gone; return the pids stopped."""
    import psutil

    stopped: list[int] = []
    folder = record_dir()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        if rec.get("driver") == os.getpid() or _alive(int(rec["driver"]), float(rec["driver_created"])):
            continue  # a live driver's Ray is not ours to stop
        procs = [p for r in rec.get("procs", []) if (p := _alive(int(r["pid"]), float(r["created"])))]
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _, left = psutil.wait_procs(procs, timeout=grace)
        for p in left:  # the agents ignore SIGTERM
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(left, timeout=grace)
        if procs:
            log.warning(
                "stopped %d leftover process(es) of the embedded Ray of killed driver %s: %s",
                len(procs),
                rec["driver"],
                ", ".join(
                    f"{r['name']}[{r['pid']}]" for r in rec["procs"] if r["pid"] in {p.pid for p in procs}
                ),
            )
        stopped += [p.pid for p in procs]
        path.unlink(missing_ok=True)
    return stopped
