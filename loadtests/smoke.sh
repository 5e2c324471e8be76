#!/usr/bin/env bash
# CI smoke of the whole path: a throwaway service on the local Postgres and Redis, a flash
# crowd on a sale that opens ~10 s later, the writer drained, the audit; everything it
# started is stopped and its database dropped, also on failure.
#
#   bash loadtests/smoke.sh
#
# Servers as loadtests/throwaway.sh says. Knobs: SMOKE_USERS (300), SMOKE_RUN_TIME
# (25s), SMOKE_STOCK (200), SMOKE_LIMIT (2), SMOKE_STARTS_IN (10 seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

THROWAWAY=smoke
source loadtests/throwaway.sh
worker_pid=""
run_pid=""

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
  throwaway_cleanup "$status"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Every shopper comes from 127.0.0.1: a per-address limit would throttle the whole crowd.
# The per-user limit stays at its default (shoppers wait out a 429 and retry).
export SECKILL_RATE_LIMIT_PER_ADDRESS=off

echo "== database $DB_NAME, Redis prefix $PREFIX, service on $HOST"
throwaway_serve
"$BIN/seckill" worker >"$WORK/worker.log" 2>&1 &
worker_pid=$!

# run.sh creates the sale (as `make loadtest` does), smaller: 300 shoppers on 200 units.
SECKILL_LOADTEST_HOST="$HOST" SECKILL_LOADTEST_STOCK="${SMOKE_STOCK:-200}" \
  SECKILL_LOADTEST_LIMIT="${SMOKE_LIMIT:-2}" SECKILL_LOADTEST_STARTS_IN="${SMOKE_STARTS_IN:-10}" \
  SECKILL_LOADTEST_USERS="${SMOKE_USERS:-300}" SECKILL_LOADTEST_SPAWN_RATE=100 \
  SECKILL_LOADTEST_RUN_TIME="${SMOKE_RUN_TIME:-25s}" SECKILL_LOADTEST_DRAIN_SECONDS=20 \
  bash loadtests/run.sh &
run_pid=$!
# Waited on in the background, so a TERM from CI reaches the trap at once.
wait "$run_pid"
