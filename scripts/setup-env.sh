#!/usr/bin/env bash
# Create (or update) the project's own virtual environment in .venv and install gnnsec into it.
# torch is pinned to 2.13.0: its CPU build is what pip finds on the reference machines; any other range
# would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test,cluster]"
