#!/usr/bin/env bash
# CI smoke of the whole path: a throwaway service on the local Postgres and Redis, a flash
# crowd on a sale that opens ~10 s later, the writer drained, the audit; everything it
# started is stopped and its database dropped, also on failure.
#
#   bash loadtests/smoke.sh
#
# Servers: SECKILL_TEST_DATABASE_URL (a database to administer from; default
# postgresql://postgres@127.0.0.1:5432/postgres) and SECKILL_TEST_REDIS_URL (default
# redis://127.0.0.1:6379/0), as the tests use. Knobs: SMOKE_USERS (300), SMOKE_RUN_TIME
# (25s), SMOKE_STOCK (200), SMOKE_LIMIT (2), SMOKE_STARTS_IN (10 seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${SECKILL_BIN:-.venv/bin}
ADMIN_URL=${SECKILL_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
ADMIN_URL=${ADMIN_URL/postgresql+asyncpg:/postgresql:}
REDIS_URL=${SECKILL_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
DB_NAME="seckill_smoke_$$"
PREFIX="smoke$$-$RANDOM"
WORK=$(mktemp -d -t seckill-smoke.XXXXXX)
serve_pid=""
worker_pid=""
run_pid=""
db_created=""

stop() {  # stop(pid): TERM, up to 10 s to drain, then KILL
  local pid=$1
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.2
  done
  echo "pid $pid did not stop on TERM; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM
  stop "$run_pid"
  stop "$serve_pid"
  stop "$worker_pid"
  if (( status != 0 )); then
    for log in serve worker; do
      [[ -s "$WORK/$log.log" ]] && { echo "--- last lines of $log.log"; tail -n 30 "$WORK/$log.log"; }
    done
  fi
  if [[ -n "$db_created" ]]; then
    psql "$ADMIN_URL" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" \
      || echo "could not drop database $DB_NAME"
  fi
  "$BIN/python" loadtests/tools.py forget-prefix "$REDIS_URL" "$PREFIX" \
    || echo "could not remove Redis keys $PREFIX:*"
  rm -rf "$WORK"
  echo "== smoke $([[ $status == 0 ]] && echo passed || echo "FAILED (exit $status)") in ${SECONDS}s"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export SECKILL_DATABASE_URL SECKILL_REDIS_URL="$REDIS_URL" SECKILL_REDIS_KEY_PREFIX="$PREFIX"
SECKILL_DATABASE_URL=$("$BIN/python" loadtests/tools.py database-url "$ADMIN_URL" "$DB_NAME")
export SECKILL_JWT_SECRET
SECKILL_JWT_SECRET=$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(48))')
export SECKILL_LOG_LEVEL=WARNING
# Every shopper comes from 127.0.0.1: a per-address limit would throttle the whole crowd.
# The per-user limit stays at its default (shoppers wait out a 429 and retry).
export SECKILL_RATE_LIMIT_PER_ADDRESS=off
PORT=$("$BIN/python" loadtests/tools.py free-port)
HOST="http://127.0.0.1:$PORT"

echo "== database $DB_NAME, Redis prefix $PREFIX, service on $HOST"
psql "$ADMIN_URL" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$DB_NAME\""
db_created=1
"$BIN/seckill" migrate >/dev/null

"$BIN/seckill" serve --port "$PORT" >"$WORK/serve.log" 2>&1 &
serve_pid=$!
"$BIN/seckill" worker >"$WORK/worker.log" 2>&1 &
worker_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$HOST/readyz" >/dev/null 2>&1 && break
  kill -0 "$serve_pid" 2>/dev/null || { echo "the service did not start"; exit 1; }
  sleep 0.2
done
curl -fsS "$HOST/readyz" >/dev/null

EVENT_ID=$("$BIN/python" loadtests/tools.py create-event "$HOST" \
  --starts-in "${SMOKE_STARTS_IN:-10}" --stock "${SMOKE_STOCK:-200}" --limit "${SMOKE_LIMIT:-2}")
echo "== event $EVENT_ID: ${SMOKE_STOCK:-200} units, limit ${SMOKE_LIMIT:-2}, opens in ${SMOKE_STARTS_IN:-10}s"

SECKILL_LOADTEST_HOST="$HOST" SECKILL_LOADTEST_EVENT_ID="$EVENT_ID" \
  SECKILL_LOADTEST_USERS="${SMOKE_USERS:-300}" SECKILL_LOADTEST_SPAWN_RATE=100 \
  SECKILL_LOADTEST_RUN_TIME="${SMOKE_RUN_TIME:-25s}" SECKILL_LOADTEST_DRAIN_SECONDS=20 \
  bash loadtests/run.sh &
run_pid=$!
# Waited on in the background, so a TERM from CI reaches the trap at once.
wait "$run_pid"
