#!/usr/bin/env bash
# Multi-process check of the sweep platform on one machine, as on a real cluster:
#   - PostgreSQL (a throw-away cluster on 127.0.0.1) as MLflow's backend store,
#   - an MLflow tracking server on 127.0.0.1 serving artifacts from a local folder,
#   - a Ray head (`ray start --head`) plus a second Ray node (`ray start --address`), one CPU each,
#   - the smoke sweep submitted with RAY_ADDRESS / MLFLOW_TRACKING_URI, like `ray submit` on the head.
# Then: every trial is one FINISHED run in PostgreSQL, and trials ran on both Ray nodes.
# Everything started here is stopped by its own pid on exit (never `ray stop`, which would hit every Ray
# on the machine). Needs the postgres binaries (initdb, pg_ctl) and psycopg2 in the venv.
#
#   GNNSEC_DATA_MIRROR=../shared/data bash .ci/multiprocess.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PY:-$ROOT/.venv/bin/python}
BIN=$(dirname "$PY")
PGBIN=${PGBIN:-$(dirname "$(readlink -f "$(command -v initdb || echo /usr/lib/postgresql/15/bin/initdb)")")}
# a missing piece is a SKIP on a workstation, a failure under CI=true (scripts/test.sh installs both)
skip() {
  if [ "${CI:-}" = true ]; then echo "multiprocess: FAIL (CI=true): $*" >&2; exit 1; fi
  echo "multiprocess: SKIP: $*"
  exit 0
}
[ -x "$PGBIN/initdb" ] || skip "no postgres binaries (apt-get install postgresql)"
"$PY" -c "import psycopg2" 2>/dev/null || skip "psycopg2 missing (pip install psycopg2-binary)"
: "${GNNSEC_DATA_MIRROR:?set GNNSEC_DATA_MIRROR to the data mirror (../shared/data)}"

T=$(mktemp -d /tmp/gnnsec-mp-XXXX)
chmod 755 "$T"
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PGPORT=$(free_port); MLPORT=$(free_port); RAYPORT=$(free_port)
PIDS=()
AS_PG=()
if [ "$(id -u)" = 0 ]; then AS_PG=(runuser -u postgres --); fi  # postgres refuses to run as root

MLPID=
cleanup() {
  set +e
  [ -n "$MLPID" ] && kill -TERM -- "-$MLPID" 2>/dev/null  # the server's process group (workers, job consumers)
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null
  done
  [ -f "$T/pg/postmaster.pid" ] && "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$T/pg" -m fast stop >/dev/null
  [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

echo "== PostgreSQL on 127.0.0.1:$PGPORT"
mkdir -p "$T/pg" "$T/sock"
[ ${#AS_PG[@]} -gt 0 ] && chown postgres "$T/pg" "$T/sock"
"${AS_PG[@]}" "$PGBIN/initdb" -D "$T/pg" -U gnnsec -A trust >/dev/null
"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$T/pg" -l "$T/sock/pg.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $T/sock" start >/dev/null
"$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U gnnsec mlflow

echo "== MLflow server on 127.0.0.1:$MLPORT (PostgreSQL backend)"
setsid "$BIN/mlflow" server --backend-store-uri "postgresql+psycopg2://gnnsec@127.0.0.1:$PGPORT/mlflow" \
  --artifacts-destination "$T/mlartifacts" --host 127.0.0.1 --port "$MLPORT" --workers 1 \
  >"$T/mlflow.log" 2>&1 &
MLPID=$!
PIDS+=("$MLPID")
for _ in $(seq 120); do
  curl -sf "http://127.0.0.1:$MLPORT/health" >/dev/null 2>&1 && break
  sleep 1
done
curl -sf "http://127.0.0.1:$MLPORT/health" >/dev/null || { tail -n 30 "$T/mlflow.log"; exit 1; }

echo "== Ray head on 127.0.0.1:$RAYPORT + a worker node (1 CPU each)"
# token authentication on every node and the driver (the token file is ~/.ray/auth_token)
export RAY_AUTH_MODE=token
[ -f "${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}" ] || "$BIN/ray" get-auth-token --generate >/dev/null
"$BIN/ray" start --head --node-ip-address 127.0.0.1 --port "$RAYPORT" --num-cpus 1 --include-dashboard false \
  --temp-dir "$T/ray" --disable-usage-stats --block >"$T/ray-head.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 60); do grep -q "Ray runtime started" "$T/ray-head.log" 2>/dev/null && break; sleep 1; done
"$BIN/ray" start --address "127.0.0.1:$RAYPORT" --node-ip-address 127.0.0.1 --num-cpus 1 \
  --disable-usage-stats --block >"$T/ray-worker.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 60); do grep -q "Ray runtime started" "$T/ray-worker.log" 2>/dev/null && break; sleep 1; done
grep -q "Ray runtime started" "$T/ray-worker.log" || { tail -n 30 "$T/ray-head.log" "$T/ray-worker.log"; exit 1; }

echo "== smoke sweep on the cluster"
export RAY_ADDRESS="127.0.0.1:$RAYPORT" MLFLOW_TRACKING_URI="http://127.0.0.1:$MLPORT"
export GNNSEC_CACHE_DIR="$T/cache"
(cd /tmp && "$PY" "$ROOT/sweeps/full.py" --preset smoke --name mp-smoke --run-dir "$T/runs" \
  --cache-dir "$T/artifacts" --max-concurrent 2) >"$T/sweep.log" 2>&1 || { tail -n 60 "$T/sweep.log"; exit 1; }

echo "== checks"
"$PY" - "$T" <<'EOF'
import sys

import mlflow

sys.path.insert(0, ".")
from sweeps.driver import build_parser, make_plan

t = sys.argv[1]
runs = mlflow.search_runs(experiment_names=["gnnsec/mp-smoke"])
plan = make_plan(build_parser().parse_args(["--preset", "smoke"]))
names = {p.name for p in plan.trials}
assert len(runs) == len(names), (len(runs), len(names))
assert set(runs["tags.mlflow.runName"]) == names, "each trial exactly once"
assert set(runs["status"]) == {"FINISHED"}, runs["status"].value_counts()
assert runs["metrics.defended_acc"].notna().all()
nodes = set(runs["tags.gnnsec.ray_node"])
assert len(nodes) == 2, f"trials ran on {len(nodes)} Ray node(s)"
store = mlflow.get_tracking_uri()
client = mlflow.MlflowClient()
arts = {a.path for a in client.list_artifacts(runs["run_id"].iloc[0])}
assert "config.json" in arts, arts
print(f"multiprocess: OK: {len(runs)} trials FINISHED in PostgreSQL via {store}, on {len(nodes)} Ray nodes")
EOF
