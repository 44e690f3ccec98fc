#!/usr/bin/env bash
# Set everything up and run the main job: the `quick` sweep (AIDS and Fingerprint, every registered attack
# and defense at the paper's defaults, one seed) on embedded Ray with a local MLflow store under runs/,
# ending with the report (tables + figures) under runs/report/. Extra arguments go to sweeps/full.py,
# e.g. `bash scripts/main.sh --preset smoke` or `--preset paper`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
if [ -z "${GNNSEC_DATA_MIRROR:-}" ] && [ -d ../shared/data ]; then
  export GNNSEC_DATA_MIRROR="$(cd ../shared/data && pwd)"
fi
if [ "$#" -eq 0 ]; then set -- --preset quick; fi
.venv/bin/python sweeps/full.py "$@"
