"""The `seckill` command: serve, worker, dev, migrate, token."""

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Annotated

import typer
import uvicorn

from app import embedded
from app.auth import mint_token
from app.config import ConfigurationError, Settings, get_settings
from app.db import migrate as run_migrations

cli = typer.Typer(help="seckill: a high-concurrency flash-sale backend.", no_args_is_help=True)
logger = logging.getLogger("seckill")


def _settings() -> Settings:
    try:
        settings = get_settings()
    except ConfigurationError as exc:
        typer.secho(f"refusing to start: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings


@contextlib.contextmanager
def _servers(settings: Settings) -> Iterator[Settings]:
    """Resolve the servers (starting embedded ones if unconfigured) and expose their URLs
    to this process and its children through the environment."""
    embedded_mode = not (settings.database_url and settings.redis_url)
    with embedded.ensure_servers(settings) as urls:
        os.environ["SECKILL_DATABASE_URL"] = urls.database_url
        os.environ["SECKILL_REDIS_URL"] = urls.redis_url
        get_settings.cache_clear()
        resolved = get_settings()
        if embedded_mode:
            # Zero-config start: the embedded database is ours to keep up to date.
            run_migrations(urls.database_url)
        yield resolved


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    if workers > 1:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=settings.access_log,
            log_level=settings.log_level.lower(),
        )
    else:
        from app.main import create_app

        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            access_log=settings.access_log,
            log_level=settings.log_level.lower(),
        )


HostOpt = Annotated[str, typer.Option(help="Interface to listen on.")]
PortOpt = Annotated[int, typer.Option(help="TCP port.")]


@cli.command()
def serve(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    workers: Annotated[int, typer.Option(min=1, help="API processes.")] = 1,
) -> None:
    """Run the API."""
    with _servers(_settings()) as settings:
        _serve(settings, host, port, workers)


@cli.command()
def worker() -> None:
    """Run the order writer (and the payment-timeout sweep) until SIGTERM."""
    with _servers(_settings()) as settings:
        asyncio.run(_run_worker(settings))


async def _run_worker(settings: Settings) -> None:
    from app.main import build_services
    from app.seckill.worker import OrderWriter

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with build_services(settings) as services:
        writer = OrderWriter(
            redis=services.redis, sessionmaker=services.sessionmaker, settings=settings
        )
        await writer.run(stop)


@cli.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Bring the database schema up to date (Alembic)."""
    settings = _settings()
    if not settings.database_url:
        with _servers(settings):
            pass  # embedded mode migrates on start
        typer.echo("embedded database migrated")
        return
    run_migrations(settings.database_url, revision)
    typer.echo(f"database migrated to {revision}")


@cli.command()
def token(
    user: Annotated[str, typer.Option(help="User id (the `sub` claim).")],
    member: Annotated[bool, typer.Option(help="Member (early access).")] = False,
    admin: Annotated[bool, typer.Option(help="Operator token (role=admin).")] = False,
    ttl: Annotated[int, typer.Option(min=1, help="Lifetime in seconds.")] = 24 * 3600,
) -> None:
    """Mint a development token signed with SECKILL_JWT_SECRET."""
    typer.echo(mint_token(_settings(), user_id=user, member=member, admin=admin, ttl_seconds=ttl))


@cli.command()
def dev(host: HostOpt = "127.0.0.1", port: PortOpt = 8000) -> None:
    """API + order writer + (if unconfigured) embedded servers, with a demo sale."""
    with _servers(_settings()) as settings:
        created = asyncio.run(_ensure_demo(settings))
        worker_process = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"])
        try:
            _print_welcome(settings, host, port, created)
            _serve(settings, host, port, workers=1)
        finally:
            worker_process.send_signal(signal.SIGTERM)
            try:
                worker_process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker_process.kill()


async def _ensure_demo(settings: Settings) -> bool:
    from app.events.demo import ensure_demo_event
    from app.main import build_services

    async with build_services(settings) as services:
        return await ensure_demo_event(services) is not None


def _print_welcome(settings: Settings, host: str, port: int, created: bool) -> None:
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

Try:
  curl -s {base}/api/v1/events?state=live
  curl -s -X POST -H "Authorization: Bearer {shopper[:12]}..." \\
       -H 'Content-Type: application/json' -d '{{"quantity": 1}}' {base}/api/v1/items/1/purchase
""",
        flush=True,
    )


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
