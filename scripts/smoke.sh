#!/usr/bin/env bash
# Start a real `kap serve` on loopback (SQLite, then a fresh PostgreSQL database) and run `kap smoke` against it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
PG_ADMIN=${KAP_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/postgres}

ids() { python - <<'PY'
from kap.demo import DemoIds
i = DemoIds()
print(i.owner, i.org, i.project_a, i.project_b)
PY
}

run_against() {
  local label=$1 db_url=$2
  local data port pid status=0
  data=$(mktemp -d)
  port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  export KAP_DATA_DIR="$data" KAP_PORT="$port" DEV_AUTH=1 KAP_PUBLIC_URL="http://127.0.0.1:$port"
  if [ -n "$db_url" ]; then export KAP_DATABASE_URL="$db_url"; else unset KAP_DATABASE_URL; fi
  kap demo --no-serve > "$data/demo.txt"
  kap serve > "$data/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
  read -r owner org proj_a _ < <(ids)
  echo "== kap smoke on $label"
  kap smoke --url "http://127.0.0.1:$port" --dev-user "$owner" --dev-org "$org" --project "$proj_a" \
    --email-to smoke@example.com || status=$?
  kill "$pid"; wait "$pid" 2>/dev/null || true
  [ $status -eq 0 ] || { tail -n 40 "$data/server.log"; }
  rm -rf "$data"
  return $status
}

run_against sqlite ""
db="kap_smoke_$$"
psql "$PG_ADMIN" -qc "CREATE DATABASE $db" >/dev/null
trap 'psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
run_against postgresql "${PG_ADMIN%/*}/$db"
