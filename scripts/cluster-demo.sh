#!/usr/bin/env bash
# The scaled-out deployment on one machine (deploy/README.md does the same on real hosts):
# a 6-node Redis Cluster (3 masters + 3 replicas, redis-server on loopback ports), the
# machine's PostgreSQL (its own database), the demo registry (铜川市), the demo feed, three
# aggregators, two web hosts (gunicorn) and nginx in front of them (deploy/nginx.conf).
# Prints the URL; Ctrl-C or SIGTERM stops everything it started (the database stays: the
# next run reuses it; `--drop-db` drops it at the end).
#
# Usage: scripts/cluster-demo.sh [--port 8080] [--speed 60] [--history-days 1] [--drop-db]
# Environment: PINGAN_DEMO_PG_ADMIN_URL (default postgresql://postgres@127.0.0.1:5432/postgres,
# an account that may create databases), PINGAN_DEMO_DB (default pingan_cluster_demo),
# PINGAN_DEMO_DIR (default var/cluster-demo), PINGAN_DEMO_CLUSTER_PORT (first node's port;
# default: a free one in 20000-29000).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

PORT=8080 SPEED=60 HISTORY_DAYS=1 DROP_DB=0
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    --speed) SPEED="$2"; shift 2 ;;
    --history-days) HISTORY_DAYS="$2"; shift 2 ;;
    --drop-db) DROP_DB=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (--help)" >&2; exit 2 ;;
  esac
done
ADMIN_URL="${PINGAN_DEMO_PG_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
DB="${PINGAN_DEMO_DB:-pingan_cluster_demo}"
DIR="$(mkdir -p "${PINGAN_DEMO_DIR:-var/cluster-demo}" && cd "${PINGAN_DEMO_DIR:-var/cluster-demo}" && pwd)"
WEB_PORTS=("$((PORT + 1))" "$((PORT + 2))")
AGGREGATORS=3

# --- what it needs: Debian packages (as scripts/test.sh), the venv with the postgres extra
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)  # brings redis-cli
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
apt_install ${need[@]+"${need[@]}"}
postgres_up
scripts/bootstrap.sh postgres
PY="$PWD/.venv/bin/python"
mkdir -p "$DIR/logs"

# --- stop everything this script started, whatever way it ends
PIDS=() NAMES=() CLUSTER_UP=0
cleanup() {
  trap '' INT TERM
  local i
  if [ ${#PIDS[@]} -gt 0 ]; then
    echo "stopping…" >&2
    # nginx first (the screens' connections), then the web hosts, then the rest
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${PIDS[$i]}" 2>/dev/null || true; done
    for _ in $(seq 1 150); do
      local alive=0
      for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
      [ "$alive" -eq 0 ] && break
      sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
  fi
  if [ "$CLUSTER_UP" -eq 1 ]; then
    "$PY" -m dashboard.devkit.redis_cluster stop "$DIR/redis" || true
  fi
  if [ "$DROP_DB" -eq 1 ]; then
    pg_admin "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" && echo "dropped database $DB" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

spawn() {  # spawn NAME CMD...: a background process, its output in logs/NAME.log
  local name="$1"; shift
  "$@" >"$DIR/logs/$name.log" 2>&1 &
  PIDS+=("$!"); NAMES+=("$name")
}

pg_admin() {  # run one SQL statement as the admin account (autocommit: CREATE DATABASE)
  "$PY" - "$ADMIN_URL" "$1" <<'EOF'
import sys

import psycopg

with psycopg.connect(sys.argv[1], autocommit=True, connect_timeout=5) as c:
    c.execute(sys.argv[2])
EOF
}

# --- Redis Cluster
echo "starting a 6-node Redis Cluster in $DIR/redis …"
cluster_args=()
[ -n "${PINGAN_DEMO_CLUSTER_PORT:-}" ] && cluster_args=(--base-port "$PINGAN_DEMO_CLUSTER_PORT")
REDIS_URL="$("$PY" -m dashboard.devkit.redis_cluster start "$DIR/redis" "${cluster_args[@]}")"
CLUSTER_UP=1

# --- PostgreSQL: the registry
exists="$("$PY" - "$ADMIN_URL" "$DB" <<'EOF'
import sys

import psycopg

with psycopg.connect(sys.argv[1], connect_timeout=5) as c:
    print(c.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (sys.argv[2],)).fetchone()[0])
EOF
)"
[ "$exists" = "1" ] || pg_admin "CREATE DATABASE \"$DB\""
DATABASE_URL="$("$PY" -c 'import sys; from sqlalchemy.engine import make_url
print(make_url(sys.argv[1]).set(drivername="postgresql+psycopg", database=sys.argv[2]).render_as_string(hide_password=False))' "$ADMIN_URL" "$DB")"

# --- the settings every process shares (deploy/pingan.env.example on real hosts)
SECRET_FILE="$DIR/secret.key"
[ -s "$SECRET_FILE" ] || (umask 077 && "$PY" -c 'import secrets; print(secrets.token_hex(32))' >"$SECRET_FILE")
export REDIS_URL DATABASE_URL
export PINGAN_REDIS_CLUSTER=yes
export PINGAN_SECRET_KEY="$(cat "$SECRET_FILE")"  # the same on both web hosts
export PINGAN_FORWARDED_FROM=127.0.0.1  # nginx (the throttle and access log read its X-Forwarded-For)
export PINGAN_AUTH=demo          # every viewer is the labelled demo user, as `pingan demo`
export PINGAN_VC_SIMULATE=1
export PINGAN_DATA_DIR="$DIR/data"
pingan() { "$PY" -m dashboard "$@"; }

pingan registry migrate >/dev/null
if pingan registry stats --json | "$PY" -c 'import json, sys; sys.exit(0 if sum(json.load(sys.stdin).get("centres", {}).values() or [0]) else 1)' 2>/dev/null; then
  echo "registry: $DB already holds a region (kept)"
else
  echo "registry: building the demo region (铜川市) into $DB …"
  pingan registry demo >/dev/null
fi

# --- the processes
spawn feed "$PY" -m dashboard demo-feed --speed "$SPEED" --history-days "$HISTORY_DAYS"
for i in $(seq 1 "$AGGREGATORS"); do
  spawn "aggregator-$i" "$PY" -m dashboard aggregate
done
for i in 0 1; do  # each web host its own data dir, as on separate machines
  PINGAN_DATA_DIR="$DIR/web-$((i + 1))" spawn "web-$((i + 1))" \
    "$PY" -m dashboard serve --port "${WEB_PORTS[$i]}" --workers 2
done
upstreams=()
for p in "${WEB_PORTS[@]}"; do upstreams+=(--upstream "127.0.0.1:$p"); done
spawn nginx "$PY" -m dashboard.devkit.nginx_front start "$DIR/nginx" --listen "$PORT" "${upstreams[@]}"

URL="http://127.0.0.1:$PORT"
echo "waiting for the web hosts …"
for _ in $(seq 1 180); do
  "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$URL/" 2>/dev/null && break
  for j in "${!PIDS[@]}"; do
    kill -0 "${PIDS[$j]}" 2>/dev/null || { echo "${NAMES[$j]} stopped: $DIR/logs/${NAMES[$j]}.log" >&2; tail -n 20 "$DIR/logs/${NAMES[$j]}.log" >&2; exit 1; }
  done
  sleep 1
done
cat <<EOF

Pingan wall on Redis Cluster + PostgreSQL, two web hosts behind nginx:
  $URL/            (the wall; $URL/console the duty console)
  Redis Cluster    $REDIS_URL  (3 masters + 3 replicas, $DIR/redis)
  PostgreSQL       database $DB
  web hosts        127.0.0.1:${WEB_PORTS[0]} 127.0.0.1:${WEB_PORTS[1]}, aggregators: $AGGREGATORS
  logs             $DIR/logs/
Ctrl-C stops everything.
EOF

# --- until Ctrl-C, or until one of them stops
while sleep 1; do
  for j in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$j]}" 2>/dev/null; then
      echo "${NAMES[$j]} stopped: $DIR/logs/${NAMES[$j]}.log" >&2
      tail -n 20 "$DIR/logs/${NAMES[$j]}.log" >&2
      exit 1
    fi
  done
done
