#!/usr/bin/env bash
# Set everything up and run the main job: the `quick` sweep (AIDS and Fingerprint, every registered attack
# and defense at the paper's defaults, one seed) on embedded Ray with a local MLflow store under runs/,
# ending with the report (paper tables + figures + one self-contained report.html) under runs/report/,
# whose path is printed last. Extra arguments go to sweeps/full.py, e.g. `bash scripts/main.sh --preset
# smoke` or `--preset paper`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
if [ -z "${GNNSEC_DATA_MIRROR:-}" ] && [ -d ../shared/data ]; then
  export GNNSEC_DATA_MIRROR="$(cd ../shared/data && pwd)"
fi
if [ "$#" -eq 0 ]; then set -- --preset quick; fi
status=0
.venv/bin/python sweeps/full.py --no-report "$@" || status=$?
# the report of the sweep just run (the newest experiment of its store), even when some trials failed
report_args=()
dry_run=0
prev=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    --run-dir=*) report_args+=(--run-dir "${arg#--run-dir=}") ;;
  esac
  if [ "$prev" = "--run-dir" ]; then report_args+=(--run-dir "$arg"); fi
  prev="$arg"
done
if [ "$dry_run" = 0 ]; then
  .venv/bin/python -m gnnsec report "${report_args[@]}" | tail -n 1   # "report: <path>/report.html"
fi
exit "$status"
