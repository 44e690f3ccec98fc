#!/usr/bin/env python
"""The whole GCleaner study as one Ray Tune sweep tracked in MLflow (see sweeps/README.md).

python sweeps/full.py --preset smoke|quick|paper [--only SUBSWEEP ...] [--dry-run] [--resume]
ray submit cluster/cluster.yaml sweeps/full.py --preset paper
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `import sweeps` from a checkout

from sweeps.driver import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
