#!/usr/bin/env bash
# Set everything up and run the test suite: own venv, lint + format check (ruff), then pytest.
# Datasets come from the offline mirror ($GNNSEC_DATA_MIRROR, default ../shared/data when present).
set -euo pipefail
cd "$(dirname "$0")/.."
# System packages of the end-to-end tests, installed only when missing (a fresh Debian machine, as root):
# sshd + rsync + sudo for the `ray up` test, PostgreSQL for it and .ci/multiprocess.sh, Chromium for the
# report's browser test. A no-op when all are present.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  command -v rsync >/dev/null || need+=(rsync)
  command -v sudo >/dev/null || need+=(sudo)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
  if [ ${#need[@]} -gt 0 ]; then
    echo "test.sh: apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi
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
