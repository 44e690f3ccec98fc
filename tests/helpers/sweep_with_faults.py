#!/usr/bin/env python
"""Test-only wrapper around ``sweeps/full.py`` that injects faults into chosen trials.

    python tests/helpers/sweep_with_faults.py --inject-failure SUBSTRING [--pause-in SUBSTRING] <driver args>

``--inject-failure``: trials whose name contains SUBSTRING raise (exercises retries and FAILED runs).
``--pause-in``: trials whose name contains SUBSTRING write ``<run dir>/paused-<pid>`` and sleep before the
real trial runs, so a test can kill that worker (or the driver) mid-trial. The shipped driver knows nothing
of either: the wrapper passes its own trial function to ``sweeps.driver.main``. Defined in ``__main__``,
so Ray ships it to workers by value.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sweeps.driver import main  # noqa: E402
from sweeps.trainable import sweep_trainable  # noqa: E402


class InjectedFailure(RuntimeError):
    """Raised on purpose by a trial the test marked."""


def make_trainable(fail: str | None, pause: str | None, marker_dir: str, pause_seconds: float):  # noqa: ANN201
    def trainable(config: dict[str, Any]) -> None:
        name = config["trial"]["name"]
        if fail and fail in name:
            raise InjectedFailure(f"failure injected into {name} (test setting)")
        if pause and pause in name:
            Path(marker_dir).mkdir(parents=True, exist_ok=True)
            (Path(marker_dir) / f"paused-{os.getpid()}").write_text(name)
            time.sleep(pause_seconds)
        sweep_trainable(config)

    # Tune identifies a trainable by name: `--resume` with the shipped driver must find the same one
    trainable.__name__ = trainable.__qualname__ = sweep_trainable.__name__
    return trainable


if __name__ == "__main__":
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--inject-failure")
    p.add_argument("--pause-in")
    p.add_argument("--pause-seconds", type=float, default=30.0)
    p.add_argument("--marker-dir", default="")
    ours, rest = p.parse_known_args()
    fn = make_trainable(ours.inject_failure, ours.pause_in, ours.marker_dir, ours.pause_seconds)
    sys.exit(main(rest, trainable_fn=fn))
