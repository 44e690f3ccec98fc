#!/usr/bin/env bash
# Set everything up and run the test suite: own venv, lint + format check (ruff), then pytest.
# Datasets come from the offline mirror ($GNNSEC_DATA_MIRROR, default ../shared/data when present).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
if [ -z "${GNNSEC_DATA_MIRROR:-}" ] && [ -d ../shared/data ]; then
  export GNNSEC_DATA_MIRROR="$(cd ../shared/data && pwd)"
fi
export GNNSEC_CACHE_DIR="${GNNSEC_CACHE_DIR:-$PWD/.gnnsec/test-cache}"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# --- CI: no skips (CI=true, as .ci/run is called: a missing mirror or a skipped check is a failure)
if [ "${CI:-}" = true ]; then
  [ -n "${GNNSEC_DATA_MIRROR:-}" ] && [ -d "${GNNSEC_DATA_MIRROR:-}" ] ||
    { echo "test.sh: CI=true: no data mirror (set GNNSEC_DATA_MIRROR, e.g. ../shared/data)" >&2; exit 1; }
  [ "${GNNSEC_SKIP_MULTIPROCESS:-0}" != 1 ] ||
    { echo "test.sh: CI=true: GNNSEC_SKIP_MULTIPROCESS=1 would skip the multi-process check" >&2; exit 1; }
fi
# --- end CI
# the real multi-process check: Ray head + worker node, PostgreSQL-backed MLflow server, smoke sweep
if [ "${GNNSEC_SKIP_MULTIPROCESS:-0}" != 1 ] && [ -n "${GNNSEC_DATA_MIRROR:-}" ]; then
  bash .ci/multiprocess.sh
fi
.venv/bin/python -m pytest -q "$@"
