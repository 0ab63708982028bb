#!/usr/bin/env bash
# Make this machine ready for the suite, or stop at once with one line naming what is missing.
#
# On Debian as root: installs the system packages the suite uses (tesseract-ocr, chromium, curl,
# python3-venv) when they are missing, and starts a PostgreSQL cluster and Redis that are
# installed but down. Anywhere else it only checks, and names the command that would fix it.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
PG_URL=${KAP_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
REDIS_HOST=${KAP_TEST_REDIS_HOST:-127.0.0.1}
REDIS_PORT=${KAP_TEST_REDIS_PORT:-6379}

fail() { echo "make test: $*" >&2; exit 1; }

is_debian_root() { [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null; }

# 1. System packages: a command (or file) and the Debian package that provides it.
missing=()
need() { # need PACKAGE TEST...
  local package=$1; shift
  "$@" >/dev/null 2>&1 || missing+=("$package")
}
need python3-venv "$PYTHON" -c "import ensurepip, venv"
need tesseract-ocr command -v tesseract
need chromium test -x "${KAP_TEST_CHROMIUM:-/usr/bin/chromium}"
need curl command -v curl
need fonts-dejavu-core test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
need redis-server command -v redis-server
need postgresql sh -c 'ls -d /usr/lib/postgresql/*/bin/initdb'
if [ ${#missing[@]} -gt 0 ]; then
  if is_debian_root; then
    echo "== installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    fail "missing ${missing[*]}; install with: sudo apt-get install ${missing[*]}"
  fi
fi

# 2. Services: PostgreSQL at $KAP_TEST_PG_URL and Redis at $REDIS_HOST:$REDIS_PORT.
pg_up() { pg_isready -q -d "$PG_URL" >/dev/null 2>&1; }
redis_up() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

started=0
if ! pg_up; then
  cluster=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1 || true)
  if [ -n "$cluster" ] && [ "$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null; then
    echo "== starting PostgreSQL $cluster"
    pg_ctlcluster --skip-systemctl-redirect "$cluster" main start || true
    started=1
  fi
fi
if ! redis_up && [ "$(id -u)" = 0 ] && command -v redis-server >/dev/null; then
  echo "== starting Redis on $REDIS_HOST:$REDIS_PORT"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/kap-test.log || true
  started=1
fi
if [ "$started" = 1 ]; then
  for _ in $(seq 1 30); do
    pg_up && redis_up && break
    sleep 1
  done
fi
pg_up || fail "PostgreSQL is not reachable at $PG_URL; start it (pg_ctlcluster <version> main start) or set KAP_TEST_PG_URL to a server that trusts user postgres"
redis_up || fail "Redis is not reachable at $REDIS_HOST:$REDIS_PORT; start it with: redis-server --daemonize yes --port $REDIS_PORT"
if command -v psql >/dev/null; then
  psql "$PG_URL" -Atqc "select 1" >/dev/null 2>&1 \
    || fail "PostgreSQL at $PG_URL refuses the connection (a password is asked?); trust 127.0.0.1 in pg_hba.conf or set KAP_TEST_PG_URL"
fi
