"""`seckill serve`, `worker`, `dev` and `healthcheck`: starting and checking the processes
(app/processes/)."""

import asyncio
import logging
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Annotated

import typer
from uvicorn.config import STARTUP_FAILURE  # uvicorn's exit code for a failed start-up

from app.auth import mint_token
from app.cli.shared import check_servers, fail, load_settings, servers
from app.config import PUBLIC_SECRETS, Settings, get_settings
from app.processes.server import serve as run_server
from app.processes.services import build_services

HostOpt = Annotated[str, typer.Option(help="Interface to listen on.")]
PortOpt = Annotated[int, typer.Option(help="TCP port.")]


def serve(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    workers: Annotated[int, typer.Option(min=1, help="API processes.")] = 1,
) -> None:
    """Run the API."""
    with servers(load_settings()) as settings:
        asyncio.run(check_servers(settings))
        serve_api(settings, host, port, workers)


class _StartupTraceback(logging.Filter):
    """uvicorn logs a failed start-up as the whole traceback: keep its last line (the
    error itself) for the one-line message, and let the traceback through at DEBUG only."""

    def __init__(self, *, debug: bool) -> None:
        super().__init__()
        self.debug = debug
        self.error: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno >= logging.ERROR and message.startswith("Traceback"):
            self.error = message.strip().splitlines()[-1]
            return self.debug
        return True


def serve_api(settings: Settings, host: str, port: int, workers: int) -> None:
    """The API until stopped; a start-up that fails anyway (a server lost since
    check_servers) is one line and exit 1, not uvicorn's traceback and exit 3."""
    startup = _StartupTraceback(debug=settings.log_level.upper() == "DEBUG")
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(startup)
    try:
        run_server(settings, host, port, workers)
    except SystemExit as exc:
        if exc.code != STARTUP_FAILURE:
            raise
        fail(
            f"seckill: the API did not start ({startup.error or 'see the log above'}): "
            "check that Postgres and Redis are up and SECKILL_DATABASE_URL / "
            "SECKILL_REDIS_URL point at them (SECKILL_LOG_LEVEL=DEBUG shows the traceback)."
        )
    finally:
        uvicorn_log.removeFilter(startup)


def worker(
    metrics_port: Annotated[
        int,
        typer.Option(
            min=0,
            max=65535,
            help="Port of this worker's /metrics and /healthz (e.g. 9101; 0: none).",
        ),
    ] = 0,
    metrics_host: Annotated[str, typer.Option(help="Interface of the metrics port.")] = (
        "127.0.0.1"
    ),
) -> None:
    """Run the order writer (and the payment-timeout sweep) until SIGTERM, with its own
    /metrics and /healthz on the metrics port."""
    from app.processes.worker import run_worker

    with servers(load_settings()) as settings:
        asyncio.run(run_worker(settings, metrics_host, metrics_port))


def healthcheck(
    worker: Annotated[
        bool, typer.Option(help="Check the order writer's heartbeat file, not the API.")
    ] = False,
    url: Annotated[str, typer.Option(help="The API's liveness URL.")] = (
        "http://127.0.0.1:8000/healthz"
    ),
    max_age: Annotated[
        float, typer.Option(min=1, help="Seconds after which a heartbeat is stale.")
    ] = 30.0,
) -> None:
    """Container health check: exit 0 if this container's process is alive. The API
    answers /healthz; the worker serves no HTTP, so its loop touches a heartbeat file
    (SECKILL_WORKER_HEARTBEAT_FILE) on every pass, also while waiting for a server."""
    if worker:
        path = get_settings().worker_heartbeat_file
        if path is None:
            typer.secho("SECKILL_WORKER_HEARTBEAT_FILE is not set", err=True)
            raise typer.Exit(1)
        try:
            age = time.time() - path.stat().st_mtime
        except OSError as exc:
            typer.secho(f"no heartbeat: {exc}", err=True)
            raise typer.Exit(1) from exc
        if age > max_age:
            typer.secho(f"heartbeat is {age:.0f}s old", err=True)
            raise typer.Exit(1)
        return
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - a local http URL
            pass
    except OSError as exc:
        typer.secho(f"{url}: {exc}", err=True)
        raise typer.Exit(1) from exc


def dev(host: HostOpt = "127.0.0.1", port: PortOpt = 8000) -> None:
    """API + order writer + (if unconfigured) embedded servers, with a demo sale."""
    with servers(load_settings()) as settings:
        created, item_id = asyncio.run(_ensure_demo(settings))
        worker_process = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"])
        try:
            print(welcome(settings, f"http://{host}:{port}", created, item_id), flush=True)
            serve_api(settings, host, port, workers=1)
        finally:
            worker_process.send_signal(signal.SIGTERM)
            try:
                worker_process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker_process.kill()


async def _ensure_demo(settings: Settings) -> tuple[bool, int | None]:
    """Create the demo sale if nothing is on; returns (created, an item on sale)."""
    from app.events.demo import ensure_demo_event, first_open_item_id

    async with build_services(settings) as services:
        created = await ensure_demo_event(services) is not None
        return created, await first_open_item_id(services)


def welcome(settings: Settings, base: str, created: bool, item_id: int | None) -> str:
    """What `seckill dev` prints: where everything is, and commands that work as printed,
    after a restart too (a new shopper each start: the demo limits one phone per user)."""
    shopper = mint_token(settings, user_id=f"demo-shopper-{secrets.token_hex(4)}")
    operator = mint_token(settings, user_id="demo-operator", admin=True)
    webhook_secret = settings.payment_webhook_secret.get_secret_value()
    if webhook_secret not in PUBLIC_SECRETS:
        # A secret of the operator's own stays off the screen (and the scrollback).
        webhook_secret = '"$SECKILL_PAYMENT_WEBHOOK_SECRET"   # yours, as set'
    headline = "A demo flash sale was created" if created else "A sale is already on"
    auth = '-H "Authorization: Bearer $TOKEN"'
    order_id = "python3 -c 'import json, sys; print(json.load(sys.stdin)[\"order_id\"])'"
    return f"""
seckill is up at {base}   (API docs: {base}/docs)
{headline}: GET {base}/api/v1/events?state=live
Live dashboard: {base}/dashboard   (paste the operator token)

Shopper token:  {shopper}
Operator token: {operator}

Try (in another terminal):
  export TOKEN={shopper}
  export SECKILL_PAYMENT_WEBHOOK_SECRET={webhook_secret}
  curl -s {base}/api/v1/items/{item_id}
  ORDER=$(curl -s -X POST {auth} -H 'Content-Type: application/json' \\
       -d '{{"quantity": 1}}' {base}/api/v1/items/{item_id}/purchase | {order_id})
  curl -s --fail-with-body --retry 5 --retry-all-errors --retry-delay 1 -X POST {auth} \\
       -H 'Content-Type: application/json' -d '{{}}' {base}/api/v1/orders/$ORDER/pay
  curl -s {auth} {base}/api/v1/orders
(pay is retried while the order is still queued, a moment after the purchase; the
webhook secret signs README's payment-notification example)
"""
