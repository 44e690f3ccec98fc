#!/usr/bin/env python
"""The whole GCleaner study as one Ray Tune sweep tracked in MLflow (see sweeps/README.md).

python sweeps/full.py --preset smoke|quick|paper [--only SUBSWEEP ...] [--dry-run] [--resume]
ray submit cluster/cluster.yaml sweeps/full.py --preset paper

Run from a checkout, this file imports the checkout's ``sweeps``; copied alone (``ray submit`` puts it in
``~/full.py`` on the head), it imports the installed project, which ships the ``sweeps`` package.
"""

import sys
from pathlib import Path

_checkout = Path(__file__).resolve().parents[1]
if (_checkout / "sweeps" / "driver.py").is_file():  # run from a checkout: use its code
    sys.path.insert(0, str(_checkout))
try:
    from sweeps.driver import main
except ModuleNotFoundError as exc:
    if exc.name not in ("sweeps", "sweeps.driver", "gnnsec"):
        raise
    sys.exit(
        f"{Path(__file__).name}: cannot import {exc.name!r} with {sys.executable}: install the project on "
        "this machine (pip install -e <checkout>, which ships the `sweeps` package; the cluster configs do "
        "it on every node) or run the script from a checkout (python <checkout>/sweeps/full.py)"
    )

if __name__ == "__main__":
    sys.exit(main())
