#!/usr/bin/env bash
# A headless flash crowd against a running service, then the audit (`make loadtest`).
#
#   bash loadtests/run.sh
#
# By default it creates its own one-item sale opening ~10 s later and sends a crowd that
# wants more than its stock: 1,000 shoppers (1 or 2 units each, limit 2) on 500 units,
# all counting down to the opening by the server's clock and buying on the dot, so the
# sale sells out in the first seconds; then it waits for the writer, audits that sale
# and prints one headline line (here on a shared 2-core machine, load average 4; one line,
# wrapped here):
#
#   loadtest: 5,386 requests in 30 s, 0 failed; rush 10.0 s: accepted 390 (39/s),
#   refused 610 (61/s), rate-limited 1; sold out 3.6 s into the rush; purchase p50
#   620 ms, p99 7600 ms; audit: ok
#
# The rush runs from the first purchase answered to the last (accepted/s and refused/s
# are over it); p50/p99 are of every purchase request, as Locust timed it.
#
# Run it with the service's own environment (SECKILL_DATABASE_URL, SECKILL_REDIS_URL,
# SECKILL_REDIS_KEY_PREFIX, SECKILL_JWT_SECRET, SECKILL_METRICS_TOKEN if set; none for
# `make demo`'s embedded servers): the operator's and shoppers' tokens are minted with
# that secret, and the audit reads the same Postgres and Redis. Every shopper comes from
# this machine's address: start the service with SECKILL_RATE_LIMIT_PER_ADDRESS=off
# (e.g. `SECKILL_RATE_LIMIT_PER_ADDRESS=off make demo`), else the rush is spread by the
# per-address limit (counted as rate-limited in the headline). Knobs (environment):
#
#   SECKILL_LOADTEST_HOST            service URL (default http://127.0.0.1:8000)
#   SECKILL_LOADTEST_USERS           shoppers (default 1000)
#   SECKILL_LOADTEST_SPAWN_RATE      shoppers started per second (default 250)
#   SECKILL_LOADTEST_RUN_TIME        length of the run (default 30s)
#   SECKILL_LOADTEST_STOCK           units of the sale it creates (default 500)
#   SECKILL_LOADTEST_LIMIT           its per-user limit (default 2)
#   SECKILL_LOADTEST_STARTS_IN       seconds until it opens (default: every shopper
#                                    started, plus 6)
#   SECKILL_LOADTEST_EVENT_ID        buy from this existing event instead (e.g. the demo's)
#   SECKILL_LOADTEST_DRAIN_SECONDS   wait for the order writer to store every accepted
#                                    order before the audit (default 30)
#   ... and the shoppers' own knobs, listed in loadtests/locustfile.py.
#
# Exit code 0 when Locust saw no failure, the writer drained and the audit holds; else 1.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

BIN=${SECKILL_BIN:-.venv/bin}
HOST=${SECKILL_LOADTEST_HOST:-http://127.0.0.1:8000}
USERS=${SECKILL_LOADTEST_USERS:-1000}
SPAWN_RATE=${SECKILL_LOADTEST_SPAWN_RATE:-250}
RUN_TIME=${SECKILL_LOADTEST_RUN_TIME:-30s}
STOCK=${SECKILL_LOADTEST_STOCK:-500}
LIMIT=${SECKILL_LOADTEST_LIMIT:-2}
STARTS_IN=${SECKILL_LOADTEST_STARTS_IN:-$(( (USERS + SPAWN_RATE - 1) / SPAWN_RATE + 6 ))}
DRAIN_SECONDS=${SECKILL_LOADTEST_DRAIN_SECONDS:-30}
EVENT_ID=${SECKILL_LOADTEST_EVENT_ID:-}
SUMMARY=$(mktemp -t seckill-loadtest.XXXXXX)

locust_pid=""
stop_locust() {
  if [[ -n "$locust_pid" ]] && kill -0 "$locust_pid" 2>/dev/null; then
    kill -TERM "$locust_pid" 2>/dev/null
    wait "$locust_pid" 2>/dev/null
  fi
}
trap 'stop_locust; rm -f "$SUMMARY"' EXIT
trap 'exit 130' INT TERM

if [[ -z "$EVENT_ID" ]]; then
  EVENT_ID=$("$BIN/python" loadtests/tools.py create-event "$HOST" \
    --starts-in "$STARTS_IN" --stock "$STOCK" --limit "$LIMIT") || exit 1
  echo "== sale $EVENT_ID created: $STOCK units, limit $LIMIT, opens in ${STARTS_IN}s"
# A run with nothing to buy proves nothing: fail before the crowd, saying why.
elif ! "$BIN/python" - "$HOST" "$EVENT_ID" <<'PY'
import sys

import httpx

host, event_id = sys.argv[1], sys.argv[2]
try:
    response = httpx.get(f"{host}/api/v1/events/{event_id}", timeout=10)
except httpx.HTTPError as exc:
    sys.exit(f"loadtest: cannot reach {host}: {exc}")
items = response.json()["items"] if response.status_code == 200 else []
buyable = [i for i in items if i["state"] in ("live", "upcoming") and i["remaining"] > 0]
if not buyable:
    sys.exit(f"loadtest: nothing to buy (event {event_id} has no stock on sale); leave "
             "SECKILL_LOADTEST_EVENT_ID unset to create a sale")
print(f"loadtest: {len(buyable)} item(s) on sale")
PY
then
  exit 1
fi

echo "== flash crowd: $USERS shoppers (+$SPAWN_RATE/s) for $RUN_TIME against $HOST (event $EVENT_ID)"
# In the background and waited on, so a signal reaches the trap at once.
SECKILL_LOADTEST_EVENT_ID="$EVENT_ID" SECKILL_LOADTEST_SUMMARY="$SUMMARY" \
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
"$BIN/seckill" audit "$EVENT_ID"
audit_status=$?

echo "== locust exit $locust_status, drain exit $drain_status, audit exit $audit_status"
verdict=ok
(( audit_status == 0 )) || verdict=failed
(( drain_status == 0 )) || verdict=not-drained
"$BIN/python" loadtests/tools.py headline "$SUMMARY" --audit "$verdict"
if (( locust_status != 0 || drain_status != 0 || audit_status != 0 )); then
  echo "load test FAILED"
  exit 1
fi
echo "load test passed"
