#!/usr/bin/env bash
# Lint, types, then the whole suite on SQLite and on a fresh PostgreSQL database.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"

echo "== ruff"; ruff check src tests bench
echo "== mypy"; mypy
echo "== tenant scope lint"; python scripts/lint_scope.py
PG_URL=${KAP_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
if ! python -c "import psycopg,sys; psycopg.connect(sys.argv[1], connect_timeout=3).close()" "$PG_URL" 2>/dev/null; then
  echo "PostgreSQL is not reachable at $PG_URL (set KAP_TEST_PG_URL); the suite runs on both databases." >&2
  exit 1
fi
echo "== pytest on SQLite"; KAP_TEST_DB=sqlite pytest -q -p no:cacheprovider "$@"
echo "== pytest on PostgreSQL"; KAP_TEST_DB=postgresql KAP_TEST_PG_URL="$PG_URL" pytest -q -p no:cacheprovider "$@"
