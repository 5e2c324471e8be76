"""The `seckill` command: serve, worker, dev, migrate, token, audit, dead-letters."""

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
import uvicorn
from pydantic import ValidationError

from app import embedded
from app.auth import mint_token
from app.config import ConfigurationError, Settings, get_settings
from app.db import migrate as run_migrations

if TYPE_CHECKING:
    from app.seckill.audit_report import AuditReport

cli = typer.Typer(help="seckill: a high-concurrency flash-sale backend.", no_args_is_help=True)
logger = logging.getLogger("seckill")


def _settings() -> Settings:
    try:
        settings = get_settings()
    except ConfigurationError as exc:
        typer.secho(f"refusing to start: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"SECKILL_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        typer.secho(
            f"refusing to start: invalid settings: {problems}", fg=typer.colors.RED, err=True
        )
        raise typer.Exit(2) from exc
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # uvicorn re-raises the SIGTERM it handled once the app is down. The default action
    # would end the process on the spot, leaving the embedded servers running; SystemExit
    # unwinds `_servers`, which stops them.
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _servers(settings: Settings) -> Iterator[Settings]:
    """Resolve the servers (starting embedded ones if unconfigured) and expose their URLs
    to this process and its children through the environment."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
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
            timeout_keep_alive=settings.http_keep_alive_seconds,
            log_level=settings.log_level.lower(),
        )
    else:
        from app.main import create_app

        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            access_log=settings.access_log,
            timeout_keep_alive=settings.http_keep_alive_seconds,
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
    from app.orders.timeouts import TimeoutSweeper
    from app.seckill.worker import OrderWriter

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with build_services(settings) as services:
        writer = OrderWriter(
            redis=services.redis, sessionmaker=services.sessionmaker, settings=settings
        )
        # Both finish the batch in hand when `stop` is set; if one fails, the other is
        # cancelled and the worker exits with the error (its supervisor restarts it).
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(writer.run(stop))
            tasks.create_task(TimeoutSweeper(services=services).run(stop))


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
def audit(
    event_id: Annotated[
        int | None, typer.Argument(help="Event to audit (default: every event).")
    ] = None,
) -> None:
    """Check a sale's books at a quiet moment: stock, per-user limits, duplicate orders,
    the ledger, dead letters. Exit code 0 if everything holds, 1 if not, 2 if no such event."""
    from app.events.errors import EventNotFound
    from app.seckill.audit_report import format_report

    with _servers(_settings()) as settings:
        try:
            report = asyncio.run(_audit(settings, event_id))
        except EventNotFound as exc:
            typer.secho(str(exc), fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from exc
    print(format_report(report))
    raise typer.Exit(0 if report.ok else 1)


async def _audit(settings: Settings, event_id: int | None) -> "AuditReport":
    from app.main import build_services
    from app.seckill import audit as sale_audit

    async with build_services(settings) as services:
        return await sale_audit.audit(services=services, event_id=event_id)


@cli.command("dead-letters")
def dead_letters(
    entry_ids: Annotated[
        list[str] | None, typer.Argument(help="Dead-letter entry ids (default: all).")
    ] = None,
    requeue: Annotated[
        bool, typer.Option(help="Put them back in their item streams for the order writer.")
    ] = False,
) -> None:
    """List the order entries the writer gave up on (their stock was taken, no order row
    exists), or requeue them once the cause is fixed. Exit 1 if any could not be."""
    with _servers(_settings()) as settings:
        ok = asyncio.run(_dead_letters(settings, entry_ids, requeue=requeue))
    raise typer.Exit(0 if ok else 1)


async def _dead_letters(settings: Settings, entry_ids: list[str] | None, *, requeue: bool) -> bool:
    from app.redis import create_redis
    from app.seckill import dead_letters as letters

    assert settings.redis_url
    redis = create_redis(settings, settings.redis_url)
    try:
        prefix = settings.redis_key_prefix
        if not requeue:
            found = await letters.read_dead_letters(redis, prefix)
            for d in found:
                if entry_ids is None or d.entry_id in entry_ids:
                    print(f"{d.entry_id}  order {d.order_id or '?'}  from {d.stream}: {d.reason}")
            print(f"{len(found)} dead-lettered order entr(y/ies)")
            return True
        result = await letters.requeue(redis=redis, prefix=prefix, entry_ids=entry_ids)
        print(f"requeued {len(result.requeued)}: {' '.join(result.requeued) or '-'}")
        if result.unreadable:
            print(f"left (unreadable, fix by hand): {' '.join(result.unreadable)}")
        if result.unknown:
            print(f"not in the dead-letter stream: {' '.join(result.unknown)}")
        return not (result.unreadable or result.unknown)
    finally:
        await redis.aclose()


@cli.command()
def dev(host: HostOpt = "127.0.0.1", port: PortOpt = 8000) -> None:
    """API + order writer + (if unconfigured) embedded servers, with a demo sale."""
    with _servers(_settings()) as settings:
        created, item_id = asyncio.run(_ensure_demo(settings))
        worker_process = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"])
        try:
            _print_welcome(settings, host, port, created, item_id)
            _serve(settings, host, port, workers=1)
        finally:
            worker_process.send_signal(signal.SIGTERM)
            try:
                worker_process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker_process.kill()


async def _ensure_demo(settings: Settings) -> tuple[bool, int | None]:
    """Create the demo sale if nothing is on; returns (created, an item on sale)."""
    from app.events.demo import ensure_demo_event, first_open_item_id
    from app.main import build_services

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


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
