#!/bin/sh
# The image's HEALTHCHECK (Dockerfile): one image runs either role, chosen by the command
# (`seckill serve ...` or `seckill worker ...`), so the check looks at that command, the
# container's first process, and checks what that role can prove:
#
#   serve    GET /healthz on the port it was given (--port N, default 8000), with the
#            standard library alone: `seckill healthcheck` would import the whole CLI
#            (about a second of CPU) every interval, taken from the API
#   worker   `seckill healthcheck --worker`, as the compose file and Kubernetes probe it:
#            the heartbeat file its loop touches on every pass, also while it waits for
#            Redis or Postgres (SECKILL_WORKER_HEARTBEAT_FILE, set in the image)
#   other    one-shot commands (migrate, audit, ...): healthy while they run
#
#   healthcheck.sh [CMDLINE_FILE]     default /proc/1/cmdline (NUL-separated arguments)
set -eu

cmdline=${1:-/proc/1/cmdline}
role=""
port=8000
want_port=""
# One argument a line; `read` stops at the last one even without a trailing newline.
args=$(tr '\000' '\n' <"$cmdline")
while IFS= read -r arg || [ -n "$arg" ]; do
  if [ -n "$want_port" ]; then
    port=$arg
    want_port=""
    continue
  fi
  case $arg in
    serve | worker) [ -n "$role" ] || role=$arg ;;
    --port) want_port=1 ;;
    --port=*) port=${arg#--port=} ;;
  esac
done <<ARGS
$args
ARGS

case $role in
  serve)
    exec python -c '
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=3)
except OSError as error:
    sys.exit(f"{sys.argv[1]}: {error}")
' "http://127.0.0.1:$port/healthz"
    ;;
  worker) exec seckill healthcheck --worker --max-age 30 ;;
  *) exit 0 ;;
esac
