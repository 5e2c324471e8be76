"""`seckill serve`, `worker`, `dev` and `healthcheck`: starting and checking the processes
(app/processes/)."""

import asyncio
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Annotated

import typer

from app.auth import mint_token
from app.cli.shared import load_settings, servers
from app.config import Settings, get_settings
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
        run_server(settings, host, port, workers)


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
            _print_welcome(settings, host, port, created, item_id)
            run_server(settings, host, port, workers=1)
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


def _print_welcome(
    settings: Settings, host: str, port: int, created: bool, item_id: int | None
) -> None:
    base = f"http://{host}:{port}"
    shopper = mint_token(settings, user_id="demo-shopper")
    operator = mint_token(settings, user_id="demo-operator", admin=True)
    headline = "A demo flash sale was created" if created else "A sale is already on"
    print(
        f"""
seckill is up at {base}   (API docs: {base}/docs)
{headline}: GET {base}/api/v1/events?state=live

Shopper token:  {shopper}
Operator token: {operator}

Try (in another terminal):
  export TOKEN={shopper}
  curl -s {base}/api/v1/items/{item_id}
  curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
       -d '{{"quantity": 1}}' {base}/api/v1/items/{item_id}/purchase
  curl -s -H "Authorization: Bearer $TOKEN" {base}/api/v1/orders
""",
        flush=True,
    )
