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

THROWAWAY=conformance
source loadtests/throwaway.sh
SECONDS_PER_TOKEN=${CONFORMANCE_SECONDS:-90}
EXAMPLES=${CONFORMANCE_EXAMPLES:-25}
SEED=${CONFORMANCE_SEED:-1}

cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM
  stop "$serve_pid"
  if (( status != 0 )) && [[ -s "$WORK/serve.log" ]]; then
    echo "--- last lines of serve.log"; tail -n 40 "$WORK/serve.log"
  fi
  throwaway_cleanup "$status"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Thousands of requests from one address and two users: limits would only answer 429.
export SECKILL_RATE_LIMIT_PER_USER=off SECKILL_RATE_LIMIT_PER_ADDRESS=off

throwaway_serve
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
