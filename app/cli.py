"""The `seckill` command: serve, worker, dev, migrate, token, audit, dead-letters."""

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
import uvicorn
from pydantic import ValidationError

from app import embedded
from app.auth import mint_token
from app.config import ConfigurationError, Settings, get_settings
from app.db import migrate as run_migrations

if TYPE_CHECKING:
    from app.flows.audit_report import AuditReport
    from app.flows.coupon_audit import CouponAuditReport
    from app.reports.schemas import EventReport

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


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's settings, the same for one process or many."""
    from app.server import PROTOCOL

    return {
        "access_log": settings.access_log,
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "log_level": settings.log_level.lower(),
        # Request heads over this are refused (431) before they are buffered whole.
        "http": PROTOCOL,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        # No `server: uvicorn` banner.
        "server_header": False,
        # The client address for the rate limits comes from SECKILL_TRUSTED_PROXIES
        # (app/ratelimit/addresses.py); uvicorn's own rewrite would believe 127.0.0.1.
        "proxy_headers": False,
    }


@contextlib.contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """Several API processes keep their counters in one fresh directory (prometheus_client's
    multiprocess mode), so /metrics sums them whichever process answers the scrape."""
    from app.metrics import MULTIPROCESS_ENV

    if workers <= 1 or os.environ.get(MULTIPROCESS_ENV):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="seckill-metrics-") as directory:
        os.environ[MULTIPROCESS_ENV] = directory
        try:
            yield
        finally:
            os.environ.pop(MULTIPROCESS_ENV, None)


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    with _shared_metrics(workers):
        _run_uvicorn(settings, host, port, workers)


def _run_uvicorn(settings: Settings, host: str, port: int, workers: int) -> None:
    if workers > 1:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **server_options(settings),
        )
    else:
        from app.main import create_app

        uvicorn.run(create_app(settings), host=host, port=port, **server_options(settings))


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
    with _servers(_settings()) as settings:
        from app.worker_process import run_worker

        asyncio.run(run_worker(settings, metrics_host, metrics_port))


@cli.command()
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
    settings = _settings()
    if ttl > settings.jwt_max_lifetime_seconds:
        typer.secho(
            f"--ttl {ttl} is above SECKILL_JWT_MAX_LIFETIME_SECONDS "
            f"({settings.jwt_max_lifetime_seconds}): the service would refuse the token.",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(2)
    typer.echo(mint_token(settings, user_id=user, member=member, admin=admin, ttl_seconds=ttl))


@cli.command()
def recover(
    ids: Annotated[list[int], typer.Argument(help="Frozen item(s) (or coupons) to resume.")],
    coupon: Annotated[
        bool, typer.Option("--coupon", help="The ids are coupons' (their claims), not items'.")
    ] = False,
) -> None:
    """Resume selling items (claiming coupons) frozen after Redis lost or rolled back data.
    They were already rebuilt exactly from Postgres and the surviving stream; this only
    lifts the freeze, once an operator has dealt with the orders (claims) that may have
    been lost (README: runbook 'Redis lost data'). Exit code 1 if one was not frozen."""
    noun = "coupon" if coupon else "item"
    with _servers(_settings()) as settings:
        missing = asyncio.run(_recover(settings, ids, coupon=coupon))
    for entity_id in ids:
        state = "was not frozen" if entity_id in missing else "selling again"
        print(f"{noun} {entity_id}: {state}")
    raise typer.Exit(1 if missing else 0)


async def _recover(settings: Settings, ids: list[int], *, coupon: bool) -> list[int]:
    from app.flows.freshness import CLAIMS, SALES, CounterFamily, recover
    from app.main import build_services

    family: CounterFamily[Any] = CLAIMS if coupon else SALES
    missing = []
    async with build_services(settings) as services:
        for entity_id in ids:
            if await recover(services.redis, settings.redis_key_prefix, family, entity_id):
                logger.warning(
                    "%s %d unfrozen by an operator (seckill recover)", family.noun, entity_id
                )
            else:
                missing.append(entity_id)
    return missing


@cli.command()
def audit(
    event_id: Annotated[
        int | None, typer.Argument(help="Event to audit (default: every event).")
    ] = None,
) -> None:
    """Check a sale's books at a quiet moment: stock, per-user limits, duplicate orders,
    the ledger, dead letters; and every coupon's (claimed within the total, nobody over
    the per-user limit, every used coupon on exactly one live order or given back).
    Exit code 0 if everything holds, 1 if not, 2 if no such event."""
    from app.events.errors import EventNotFound
    from app.flows.audit_report import format_report
    from app.flows.coupon_audit import format_coupon_report

    with _servers(_settings()) as settings:
        try:
            report, coupons = asyncio.run(_audit(settings, event_id))
        except EventNotFound as exc:
            typer.secho(str(exc), fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from exc
    print(format_report(report))
    print()
    print(format_coupon_report(coupons))
    raise typer.Exit(0 if report.ok and coupons.ok else 1)


async def _audit(
    settings: Settings, event_id: int | None
) -> "tuple[AuditReport, CouponAuditReport]":
    from app.flows import audit as sale_audit
    from app.flows.coupon_audit import audit_coupons
    from app.main import build_services

    async with build_services(settings) as services:
        report = await sale_audit.audit(services=services, event_id=event_id)
        return report, await audit_coupons(services=services)


@cli.command()
def grant(
    coupon_id: Annotated[
        int | None, typer.Argument(help="Coupon template to grant (not with --resume).")
    ] = None,
    user: Annotated[list[str] | None, typer.Option(help="A user id (repeatable).")] = None,
    users_file: Annotated[
        typer.FileText | None, typer.Option(help="A file of user ids, one a line ('-': stdin).")
    ] = None,
    buyers_of_event: Annotated[
        int | None, typer.Option(help="Every user with an order of this event.")
    ] = None,
    resume: Annotated[int | None, typer.Option(help="Resume this grant job.")] = None,
) -> None:
    """Grant one coupon to each user (compensation, rewards) with a progress bar; or resume
    a grant job a crash interrupted. Each user gets one coupon per grant, however often
    it is resumed. Exit 1 if the job failed."""
    with _servers(_settings()) as settings:
        users = list(user or [])
        if users_file is not None:
            users += [line.strip() for line in users_file if line.strip()]
        ok = asyncio.run(_grant(settings, coupon_id, users, buyers_of_event, resume))
    raise typer.Exit(0 if ok else 1)


async def _grant(
    settings: Settings,
    coupon_id: int | None,
    users: list[str],
    buyers_of_event: int | None,
    resume: int | None,
) -> bool:
    from app.coupons.grants import GrantRunner, create_grant
    from app.coupons.schemas import GrantCreate
    from app.errors import AppError
    from app.jobs.models import JobStatus
    from app.jobs.service import get_job
    from app.main import build_services

    async with build_services(settings) as services:
        if resume is None:
            if coupon_id is None:
                typer.secho("give a COUPON_ID (or --resume JOB_ID)", fg="red", err=True)
                return False
            try:
                data = GrantCreate(
                    user_ids=users or None,
                    buyers_of_event=buyers_of_event,
                )
                async with services.sessionmaker() as session, session.begin():
                    job_id = (
                        await create_grant(session=session, coupon_id=coupon_id, data=data)
                    ).id
            except (AppError, ValidationError) as exc:
                typer.secho(f"refused: {exc}", fg="red", err=True)
                return False
            print(f"grant job {job_id} (resume with: seckill grant --resume {job_id})", flush=True)
        else:
            job_id = resume
            try:
                async with services.sessionmaker() as session:
                    await get_job(session=session, job_id=job_id)
            except AppError as exc:
                typer.secho(str(exc), fg="red", err=True)
                return False
        runner = GrantRunner(sessionmaker=services.sessionmaker, settings=settings)
        with typer.progressbar(length=1, label=f"job {job_id}", show_pos=True) as bar:
            seen = 0

            def progress(done: int, total: int) -> None:
                nonlocal seen
                bar.length = max(total, 1)
                bar.update(done - seen)
                seen = done

            # A crashed runner's lease has to run out before this one takes over.
            while not await runner.run(job_id, progress):
                async with services.sessionmaker() as session:
                    job = await get_job(session=session, job_id=job_id)
                if job.status != JobStatus.RUNNING:
                    break
                await asyncio.sleep(min(settings.job_lease_seconds, 1.0))
        async with services.sessionmaker() as session:
            job = await get_job(session=session, job_id=job_id)
        print(f"job {job_id}: {job.status}, {job.done} of {job.total} users", flush=True)
        return job.status == JobStatus.DONE


@cli.command()
def report(
    event_id: Annotated[int, typer.Argument(min=1, help="The event to report on.")],
    out: Annotated[Path, typer.Option(help="Directory to write into (created).")] = Path("."),
    compare: Annotated[
        int | None, typer.Option(min=1, help="An earlier event to compare with.")
    ] = None,
) -> None:
    """Write a sale's report: event-ID.json (totals, items, per-minute series, and the
    comparison), event-ID.csv (per item and total) and event-ID.png (units over time)."""
    from app.events.errors import EventNotFound
    from app.reports.service import report_csv

    with _servers(_settings()) as settings:
        try:
            built, png = asyncio.run(_report(settings, event_id, compare))
        except EventNotFound as exc:
            typer.secho(str(exc), fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from exc
    out.mkdir(parents=True, exist_ok=True)
    files = [out / f"event-{event_id}.{ext}" for ext in ("json", "csv", "png")]
    files[0].write_text(built.model_dump_json(indent=2) + "\n")
    files[1].write_text(report_csv(built))
    files[2].write_bytes(png)
    for written in files:
        print(written)


async def _report(
    settings: Settings, event_id: int, compare: int | None
) -> "tuple[EventReport, bytes]":
    from app.main import build_services
    from app.reports import chart
    from app.reports import service as reports

    async with build_services(settings) as services, services.sessionmaker() as session:
        built = await reports.build_report(
            session=session, services=services, event_id=event_id, compare_with=compare
        )
    return built, await asyncio.to_thread(chart.report_png, built)


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
    from app.flows import dead_letters as letters
    from app.redis import create_redis

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
    from app.cli_errors import explain
    from app.operator_cli import events_cli
    from app.orders_cli import orders_cli

    cli.add_typer(events_cli, name="event")
    cli.add_typer(orders_cli, name="orders")
    try:
        cli()
    except Exception as exc:
        try:
            settings: Settings | None = get_settings()
        except Exception:
            settings = None
        line = explain(exc, settings)
        if line is None:
            raise
        typer.secho(f"seckill: {line}", fg=typer.colors.RED, err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
