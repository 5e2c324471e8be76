#!/usr/bin/env bash
# A headless flash-crowd run against a running service, then the audit (`make loadtest`).
#
#   bash loadtests/run.sh
#
# Run it with the service's own environment (SECKILL_DATABASE_URL, SECKILL_REDIS_URL,
# SECKILL_REDIS_KEY_PREFIX, SECKILL_JWT_SECRET; none for `make demo`'s embedded servers):
# the shoppers' tokens are minted with that secret, and the audit reads the same
# Postgres and Redis. Every shopper comes from this machine's address: start the service
# with SECKILL_RATE_LIMIT_PER_ADDRESS=off. Knobs (environment):
#
#   SECKILL_LOADTEST_HOST            service URL (default http://127.0.0.1:8000)
#   SECKILL_LOADTEST_USERS           shoppers (default 300)
#   SECKILL_LOADTEST_SPAWN_RATE      shoppers started per second (default 100)
#   SECKILL_LOADTEST_RUN_TIME        length of the run (default 30s)
#   SECKILL_LOADTEST_EVENT_ID        event to buy from and to audit (default: the live or
#                                    next event, and the audit covers every event)
#   SECKILL_LOADTEST_DRAIN_SECONDS   wait for the order writer to store every accepted
#                                    order before the audit (default 30)
#   ... and the shoppers' own knobs, listed in loadtests/locustfile.py.
#
# Exit code 0 when Locust saw no failure, the writer drained and the audit holds; else 1.
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=${SECKILL_BIN:-.venv/bin}
HOST=${SECKILL_LOADTEST_HOST:-http://127.0.0.1:8000}
USERS=${SECKILL_LOADTEST_USERS:-300}
SPAWN_RATE=${SECKILL_LOADTEST_SPAWN_RATE:-100}
RUN_TIME=${SECKILL_LOADTEST_RUN_TIME:-30s}
DRAIN_SECONDS=${SECKILL_LOADTEST_DRAIN_SECONDS:-30}
EVENT_ID=${SECKILL_LOADTEST_EVENT_ID:-}

locust_pid=""
stop_locust() {
  if [[ -n "$locust_pid" ]] && kill -0 "$locust_pid" 2>/dev/null; then
    kill -TERM "$locust_pid" 2>/dev/null
    wait "$locust_pid" 2>/dev/null
  fi
}
trap stop_locust EXIT
trap 'exit 130' INT TERM

# A run with nothing to buy proves nothing: fail before the crowd, saying why.
if ! "$BIN/python" - "$HOST" "$EVENT_ID" <<'PY'
import sys

import httpx

host, event_id = sys.argv[1], sys.argv[2]
try:
    if event_id:
        response = httpx.get(f"{host}/api/v1/events/{event_id}", timeout=10)
        events = [response.json()] if response.status_code == 200 else []
    else:
        events = [
            e
            for state in ("live", "upcoming")
            for e in httpx.get(f"{host}/api/v1/events", params={"state": state}, timeout=10).json()
        ]
except httpx.HTTPError as exc:
    sys.exit(f"loadtest: cannot reach {host}: {exc}")
buyable = [
    i for e in events for i in e["items"] if i["state"] in ("live", "upcoming") and i["remaining"] > 0
]
if not buyable:
    what = f"event {event_id}" if event_id else "no live or upcoming event"
    sys.exit(f"loadtest: nothing to buy ({what} has stock on sale); create a sale first "
             "(POST /api/v1/admin/events)")
print(f"loadtest: {len(buyable)} item(s) on sale")
PY
then
  exit 1
fi

echo "== flash crowd: $USERS shoppers (+$SPAWN_RATE/s) for $RUN_TIME against $HOST" \
  "(event ${EVENT_ID:-live or next})"
# In the background and waited on, so a signal reaches the trap at once.
"$BIN/locust" -f loadtests/locustfile.py --headless --only-summary \
  --host "$HOST" --users "$USERS" --spawn-rate "$SPAWN_RATE" --run-time "$RUN_TIME" \
  --stop-timeout 5 &
locust_pid=$!
wait "$locust_pid"
locust_status=$?
locust_pid=""

echo "== waiting up to ${DRAIN_SECONDS}s for the order writer to store every accepted order"
"$BIN/python" loadtests/tools.py wait-drained "$HOST" --timeout "$DRAIN_SECONDS"
drain_status=$?

echo "== audit"
# shellcheck disable=SC2086 # no event id: audit every event
"$BIN/seckill" audit $EVENT_ID
audit_status=$?

echo "== locust exit $locust_status, drain exit $drain_status, audit exit $audit_status"
if (( locust_status != 0 || drain_status != 0 || audit_status != 0 )); then
  echo "load test FAILED"
  exit 1
fi
echo "load test passed"
