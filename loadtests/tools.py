"""Small steps the load-test scripts need, in one typed place (run.sh, smoke.sh).

  python loadtests/tools.py free-port
  python loadtests/tools.py database-url ADMIN_URL NAME
  python loadtests/tools.py create-event HOST --starts-in 10 --stock 200 --limit 2
  python loadtests/tools.py wait-drained HOST --timeout 30
  python loadtests/tools.py forget-prefix REDIS_URL PREFIX
  python loadtests/tools.py headline SUMMARY_JSON --audit ok|failed|not-drained

Tokens are minted with SECKILL_JWT_SECRET, as the service verifies them; /metrics is
read with SECKILL_METRICS_TOKEN when it is set.
"""

import argparse
import json
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy.engine import make_url

from app.auth import mint_token
from app.config import Settings

HTTP_TIMEOUT_SECONDS = 10.0
QUEUED_LINE = re.compile(r"^seckill_orders_queued\{[^}]*\} (\d+(?:\.\d+)?)$", re.MULTILINE)


def _http(method: str, url: str, body: Any = None, token: str | None = None) -> Any:
    headers: dict[str, str] = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
        raw = response.read().decode()
    return json.loads(raw) if raw.startswith(("{", "[")) else raw


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def database_url(admin_url: str, name: str) -> str:
    url = make_url(admin_url.replace("postgresql+asyncpg", "postgresql")).set(database=name)
    return url.render_as_string(hide_password=False)


def create_event(host: str, *, starts_in: float, stock: int, limit: int, lasts: float) -> int:
    """A one-item sale opening `starts_in` seconds from now by the server's clock."""
    now = datetime.fromisoformat(_http("GET", f"{host}/api/v1/time")["now"])
    starts_at = now + timedelta(seconds=starts_in)
    token = mint_token(Settings(), user_id="loadtest-operator", admin=True)
    event = _http(
        "POST",
        f"{host}/api/v1/admin/events",
        {
            "name": "Load test flash sale",
            "starts_at": starts_at.isoformat(),
            "ends_at": (starts_at + timedelta(seconds=lasts)).isoformat(),
            "member_early_access_seconds": 1,
            "items": [
                {
                    "sku": f"LOADTEST-{int(time.time())}",
                    "name": "Load test phone",
                    "list_price": "2999.00",
                    "seckill_price": "1999.00",
                    "stock": stock,
                    "per_user_limit": limit,
                }
            ],
        },
        token,
    )
    event_id: int = event["id"]
    return event_id


def queued_orders(host: str) -> int:
    """Accepted orders not yet in Postgres, over every item (from the service's gauges)."""
    token = Settings().metrics_token
    metrics = _http("GET", f"{host}/metrics", token=token.get_secret_value() if token else None)
    return sum(int(float(v)) for v in QUEUED_LINE.findall(metrics))


def wait_drained(host: str, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        left = queued_orders(host)
        if left == 0:
            return True
        if time.monotonic() >= deadline:
            print(f"the order writer left {left} order(s) queued after {timeout:.0f}s")
            return False
        time.sleep(0.2)


def forget_prefix(redis_url: str, prefix: str) -> int:
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
    return len(keys)


def headline(summary: dict[str, Any], *, audit: str) -> str:
    """The run in one line: how much was asked, how fast the sale was decided, how fast
    it answered, and whether the books hold."""
    rush = summary["rush_seconds"]

    def per_second(count: int) -> str:
        return f"{count / rush:,.0f}/s" if rush > 0 else "-/s"

    sold_out_after = summary["sold_out_after_seconds"]
    sold_out = (
        f"sold out {sold_out_after:.1f} s into the rush"
        if sold_out_after is not None
        else "not sold out"
    )
    return (
        f"loadtest: {summary['requests']:,} requests in {summary['seconds']:.0f} s, "
        f"{summary['failures']:,} failed; rush {rush:.1f} s: "
        f"accepted {summary['accepted']:,} ({per_second(summary['accepted'])}), "
        f"refused {summary['refused']:,} ({per_second(summary['refused'])}), "
        f"rate-limited {summary['rate_limited']:,}; {sold_out}; "
        f"purchase p50 {summary['purchase_p50_ms']:.0f} ms, "
        f"p99 {summary['purchase_p99_ms']:.0f} ms; audit: {audit}"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("free-port")
    url = commands.add_parser("database-url")
    url.add_argument("admin_url")
    url.add_argument("name")
    event = commands.add_parser("create-event")
    event.add_argument("host")
    event.add_argument("--starts-in", type=float, default=10.0)
    event.add_argument("--lasts", type=float, default=600.0)
    event.add_argument("--stock", type=int, default=200)
    event.add_argument("--limit", type=int, default=2)
    drained = commands.add_parser("wait-drained")
    drained.add_argument("host")
    drained.add_argument("--timeout", type=float, default=30.0)
    forget = commands.add_parser("forget-prefix")
    forget.add_argument("redis_url")
    forget.add_argument("prefix")
    line = commands.add_parser("headline")
    line.add_argument("summary", help="the JSON file the locustfile wrote")
    line.add_argument("--audit", required=True, choices=["ok", "failed", "not-drained"])
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except urllib.error.URLError as exc:  # HTTPError too: one line, not a traceback
        print(f"loadtest: {args.command}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    match args.command:
        case "free-port":
            print(free_port())
        case "database-url":
            print(database_url(args.admin_url, args.name))
        case "create-event":
            print(
                create_event(
                    args.host,
                    starts_in=args.starts_in,
                    stock=args.stock,
                    limit=args.limit,
                    lasts=args.lasts,
                )
            )
        case "wait-drained":
            return 0 if wait_drained(args.host, timeout=args.timeout) else 1
        case "forget-prefix":
            forget_prefix(args.redis_url, args.prefix)
        case "headline":
            try:
                with open(args.summary) as summary:
                    print(headline(json.load(summary), audit=args.audit))
            except (OSError, ValueError, KeyError) as exc:
                print(f"loadtest: no figures from the crowd ({exc!r}); audit: {args.audit}")
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
