#!/usr/bin/env bash
# CI: schemathesis against the served app, once with an operator's token and once with a
# shopper's: no 5xx, and every status code, content type and body as the OpenAPI document
# says. A throwaway service on the local Postgres and Redis (as loadtests/smoke.sh), with a
# live sale in it so ids in paths can name real things; everything is removed afterwards.
#
#   bash loadtests/conformance.sh
#
# Knobs: CONFORMANCE_SECONDS (per token, default 90), CONFORMANCE_EXAMPLES (per operation,
# default 25), CONFORMANCE_SEED (default 1: the same cases every run).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${SECKILL_BIN:-.venv/bin}
ADMIN_URL=${SECKILL_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
ADMIN_URL=${ADMIN_URL/postgresql+asyncpg:/postgresql:}
REDIS_URL=${SECKILL_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
DB_NAME="seckill_conformance_$$"
PREFIX="conformance$$-$RANDOM"
WORK=$(mktemp -d -t seckill-conformance.XXXXXX)
SECONDS_PER_TOKEN=${CONFORMANCE_SECONDS:-90}
EXAMPLES=${CONFORMANCE_EXAMPLES:-25}
SEED=${CONFORMANCE_SEED:-1}
serve_pid=""
db_created=""

cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM
  if [[ -n "$serve_pid" ]]; then
    kill -TERM "$serve_pid" 2>/dev/null
    wait "$serve_pid" 2>/dev/null
  fi
  if (( status != 0 )) && [[ -s "$WORK/serve.log" ]]; then
    echo "--- last lines of serve.log"; tail -n 40 "$WORK/serve.log"
  fi
  if [[ -n "$db_created" ]]; then
    psql "$ADMIN_URL" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" \
      || echo "could not drop database $DB_NAME"
  fi
  "$BIN/python" loadtests/tools.py forget-prefix "$REDIS_URL" "$PREFIX" >/dev/null \
    || echo "could not remove Redis keys $PREFIX:*"
  rm -rf "$WORK"
  echo "== conformance $([[ $status == 0 ]] && echo passed || echo "FAILED (exit $status)") in ${SECONDS}s"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export SECKILL_DATABASE_URL SECKILL_REDIS_URL="$REDIS_URL" SECKILL_REDIS_KEY_PREFIX="$PREFIX"
SECKILL_DATABASE_URL=$("$BIN/python" loadtests/tools.py database-url "$ADMIN_URL" "$DB_NAME")
export SECKILL_JWT_SECRET
SECKILL_JWT_SECRET=$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(48))')
export SECKILL_LOG_LEVEL=WARNING
# Thousands of requests from one address and two users: limits would only answer 429.
export SECKILL_RATE_LIMIT_PER_USER=off SECKILL_RATE_LIMIT_PER_ADDRESS=off
PORT=$("$BIN/python" loadtests/tools.py free-port)
HOST="http://127.0.0.1:$PORT"

psql "$ADMIN_URL" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$DB_NAME\""
db_created=1
"$BIN/seckill" migrate >/dev/null
"$BIN/seckill" serve --port "$PORT" >"$WORK/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$HOST/readyz" >/dev/null 2>&1 && break
  kill -0 "$serve_pid" 2>/dev/null || { echo "the service did not start"; exit 1; }
  sleep 0.2
done
curl -fsS "$HOST/readyz" >/dev/null
EVENT_ID=$("$BIN/python" loadtests/tools.py create-event "$HOST" --starts-in -60 --stock 1000 --limit 5)
echo "== service on $HOST, live event $EVENT_ID"

ADMIN_TOKEN=$("$BIN/seckill" token --user conformance-operator --admin)
SHOPPER_TOKEN=$("$BIN/seckill" token --user conformance-shopper)
status=0
# One worker: on Python 3.11, hypothesis describing strategies in two threads at once can
# trip CPython's "AST constructor recursion depth mismatch" (a tool error, not a finding).
for who in operator shopper; do
  token=$ADMIN_TOKEN
  [[ $who == shopper ]] && token=$SHOPPER_TOKEN
  echo "== schemathesis as $who (${SECONDS_PER_TOKEN}s at most)"
  "$BIN/schemathesis" run "$HOST/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$EXAMPLES" --max-time "$SECONDS_PER_TOKEN" --seed "$SEED" \
    --workers 1 --request-timeout 10 --suppress-health-check all \
    --exclude-path-regex '/stream$' \
    || status=1
done
exit "$status"
