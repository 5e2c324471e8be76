# shellcheck shell=bash
# Sourced by loadtests/smoke.sh and loadtests/conformance.sh (not run on its own): a
# throwaway service on the local Postgres and Redis, with its own database and Redis key
# prefix, all removed afterwards.
#
# Set THROWAWAY (the run's name) before sourcing. Then `throwaway_serve` creates and
# migrates the database and starts the API (pid in serve_pid, log in $WORK/serve.log);
# the caller's EXIT trap stops what it started (`stop PID`) and ends with
# `throwaway_cleanup STATUS`.
#
# Servers: SECKILL_TEST_DATABASE_URL (a database to administer from; default
# postgresql://postgres@127.0.0.1:5432/postgres) and SECKILL_TEST_REDIS_URL (default
# redis://127.0.0.1:6379/0), as the tests use.

BIN=${SECKILL_BIN:-.venv/bin}
ADMIN_URL=${SECKILL_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
ADMIN_URL=${ADMIN_URL/postgresql+asyncpg:/postgresql:}
REDIS_URL=${SECKILL_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
DB_NAME="seckill_${THROWAWAY}_$$"
PREFIX="${THROWAWAY}$$-$RANDOM"
WORK=$(mktemp -d -t "seckill-${THROWAWAY}.XXXXXX")
serve_pid=""
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

throwaway_cleanup() {  # throwaway_cleanup(status): database, Redis keys, work folder
  local status=$1
  if [[ -n "$db_created" ]]; then
    psql "$ADMIN_URL" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" \
      || echo "could not drop database $DB_NAME"
  fi
  "$BIN/python" loadtests/tools.py forget-prefix "$REDIS_URL" "$PREFIX" >/dev/null \
    || echo "could not remove Redis keys $PREFIX:*"
  rm -rf "$WORK"
  echo "== $THROWAWAY $([[ $status == 0 ]] && echo passed || echo "FAILED (exit $status)") in ${SECONDS}s"
}

export SECKILL_DATABASE_URL SECKILL_REDIS_URL="$REDIS_URL" SECKILL_REDIS_KEY_PREFIX="$PREFIX"
SECKILL_DATABASE_URL=$("$BIN/python" loadtests/tools.py database-url "$ADMIN_URL" "$DB_NAME")
export SECKILL_JWT_SECRET
SECKILL_JWT_SECRET=$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(48))')
export SECKILL_LOG_LEVEL=WARNING
PORT=$("$BIN/python" loadtests/tools.py free-port)
HOST="http://127.0.0.1:$PORT"

throwaway_serve() {  # the database created and migrated, the API started and ready
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
}
