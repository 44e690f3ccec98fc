#!/usr/bin/env bash
# Services of the head node of a gnnsec cluster, run by the cluster configs (cluster.yaml, local.yaml) as
# the SSH user, from the synced checkout:
#
#   bash ~/gnnsec/cluster/head.sh db                                  # head_setup_commands
#   bash ~/gnnsec/cluster/head.sh mlflow HOST:PORT ARTIFACT_DIR       # head_start_ray_commands
#   bash ~/gnnsec/cluster/head.sh mlflow-stop
#
# db      starts PostgreSQL if it is not running (systemd or not: `service` picks), waits until it accepts
#         connections, then creates (or updates) the role `mlflow` and the database `mlflow`. The role's
#         password is generated once into ~/.pgpass (mode 600), which libpq reads: it never appears on a
#         command line (it reaches psql on stdin). Safe to run again (every `ray up`).
# mlflow  (re)starts the MLflow tracking server on HOST:PORT with the PostgreSQL backend store and artifacts
#         proxied into ARTIFACT_DIR; the previous server is stopped by the pid it recorded
#         (~/.gnnsec/mlflow-server.pid), never by name. Waits until /health answers. Server processes:
#         $GNNSEC_MLFLOW_WORKERS (default 2; only the driver writes, the UI reads).
set -euo pipefail

STATE="$HOME/.gnnsec"
PIDFILE="$STATE/mlflow-server.pid"
LOG="$STATE/mlflow-server.log"
VENV="${GNNSEC_VENV:-$HOME/venv}"
DB_URI="postgresql+psycopg2://mlflow@127.0.0.1:5432/mlflow"  # no password: libpq reads ~/.pgpass

die() { echo "head.sh: $*" >&2; exit 1; }

as_postgres() { (cd / && sudo -u postgres "$@"); }

start_postgres() {
  command -v pg_isready >/dev/null || die "PostgreSQL is not installed (apt-get install postgresql)"
  if ! pg_isready -q; then
    # systemd machines: `service` forwards to systemctl; containers/images without systemd: the init script
    sudo service postgresql start
  fi
  for _ in $(seq 60); do pg_isready -q && return 0; sleep 1; done
  die "PostgreSQL did not accept connections within 60 s (see /var/log/postgresql/)"
}

db_password() {
  if ! grep -qs '^[^:]*:[^:]*:mlflow:mlflow:' "$HOME/.pgpass"; then
    (umask 077 && printf '*:*:mlflow:mlflow:%s\n' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >>"$HOME/.pgpass")
  fi
  chmod 600 "$HOME/.pgpass"  # libpq ignores a pgpass readable by others
  awk -F: '$3 == "mlflow" && $4 == "mlflow" { print $5; exit }' "$HOME/.pgpass"
}

cmd_db() {
  start_postgres
  local pw
  pw=$(db_password)
  # printf is a shell builtin: the password travels on psql's stdin, not on any command line
  printf '%s\n' \
    "SELECT 'CREATE ROLE mlflow LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mlflow') \\gexec" \
    "ALTER ROLE mlflow WITH LOGIN PASSWORD '$pw';" |
    as_postgres psql -v ON_ERROR_STOP=1 -q >/dev/null
  as_postgres psql -tAc "SELECT 1 FROM pg_database WHERE datname = 'mlflow'" | grep -q 1 ||
    as_postgres createdb -O mlflow mlflow
}

cmd_mlflow_stop() {
  [ -f "$PIDFILE" ] || return 0
  local pid
  pid=$(cat "$PIDFILE")
  # the recorded pid, if it is still this server (not a pid reused by something else)
  if [ -n "$pid" ] && grep -qas "mlflow" "/proc/$pid/cmdline"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"  # its process group: the server and its workers
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
  fi
  rm -f "$PIDFILE"
}

cmd_mlflow() {
  local listen=${1:?HOST:PORT} artifacts=${2:?ARTIFACT_DIR}
  local host=${listen%:*} port=${listen##*:}
  start_postgres  # its store (after a reboot, or `ray up --restart-only`, it may be down)
  cmd_mlflow_stop
  mkdir -p "$STATE" "$artifacts"
  # setsid: the server leads its own process group (stopped as a whole); sh records the pid it execs into
  setsid sh -c 'echo $$ > "$0"; exec "$@"' "$PIDFILE" "$VENV/bin/mlflow" server \
    --backend-store-uri "$DB_URI" --artifacts-destination "$artifacts" \
    --host "$host" --port "$port" --workers "${GNNSEC_MLFLOW_WORKERS:-2}" >"$LOG" 2>&1 </dev/null &
  for _ in $(seq 180); do
    [ -s "$PIDFILE" ] && ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null && break  # it exited: see its log
    if "$VENV/bin/python" -c "import urllib.request as u; u.urlopen('http://$listen/health', timeout=2)" \
      2>/dev/null; then
      echo "head.sh: MLflow server on http://$listen (pid $(cat "$PIDFILE"), log $LOG)"
      return 0
    fi
    sleep 1
  done
  tail -n 30 "$LOG" >&2
  die "MLflow server did not come up on http://$listen (log above: $LOG)"
}

case "${1:-}" in
  db) cmd_db ;;
  mlflow) shift; cmd_mlflow "$@" ;;
  mlflow-stop) cmd_mlflow_stop ;;
  *) die "usage: head.sh db | mlflow HOST:PORT ARTIFACT_DIR | mlflow-stop" ;;
esac
