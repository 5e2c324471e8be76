"""`seckill migrate`, `token`, `recover`, `audit`, `reconcile`, `grant`, `report` and
`dead-letters`: the operators' tools beside the event and order commands."""

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from app.auth import mint_token
from app.cli.shared import in_transaction, load_settings, logger, servers
from app.config import Settings
from app.db import migrate as run_migrations
from app.processes.services import build_services

if TYPE_CHECKING:
    from app.flows.audit_report import AuditReport
    from app.flows.coupon_audit import CouponAuditReport
    from app.payments.schemas import ReconciliationRead
    from app.reports.campaign_schemas import CampaignReport
    from app.reports.schemas import EventReport


def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Bring the database schema up to date (Alembic)."""
    settings = load_settings()
    if not settings.database_url:
        with servers(settings):
            pass  # embedded mode migrates on start
        typer.echo("embedded database migrated")
        return
    run_migrations(settings.database_url, revision)
    typer.echo(f"database migrated to {revision}")


def token(
    user: Annotated[str, typer.Option(help="User id (the `sub` claim).")],
    member: Annotated[bool, typer.Option(help="Member (early access).")] = False,
    admin: Annotated[bool, typer.Option(help="Operator token (role=admin).")] = False,
    group: Annotated[
        list[str] | None,
        typer.Option(help="An operator's group (repeat: --group ops --group finance)."),
    ] = None,
    ttl: Annotated[int, typer.Option(min=1, help="Lifetime in seconds.")] = 24 * 3600,
) -> None:
    """Mint a development token signed with SECKILL_JWT_SECRET."""
    settings = load_settings()
    if ttl > settings.jwt_max_lifetime_seconds:
        typer.secho(
            f"--ttl {ttl} is above SECKILL_JWT_MAX_LIFETIME_SECONDS "
            f"({settings.jwt_max_lifetime_seconds}): the service would refuse the token.",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(2)
    if group and not admin:
        typer.secho("--group is an operator's: add --admin.", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    typer.echo(
        mint_token(
            settings,
            user_id=user,
            member=member,
            admin=admin,
            groups=group or (),
            ttl_seconds=ttl,
        )
    )


def recover(
    ids: Annotated[
        list[int],
        typer.Argument(help="Frozen item(s) (or coupons, queues, lotteries) to resume."),
    ],
    coupon: Annotated[
        bool, typer.Option("--coupon", help="The ids are coupons' (their claims), not items'.")
    ] = False,
    queue: Annotated[
        bool, typer.Option("--queue", help="The ids are events' (their waiting rooms).")
    ] = False,
    lottery: Annotated[
        bool, typer.Option("--lottery", help="The ids are lotteries' (their draws).")
    ] = False,
) -> None:
    """Resume selling items (claiming coupons, joining and admitting from waiting rooms)
    frozen after Redis lost or rolled back data. They were already rebuilt exactly from
    Postgres and the surviving stream; this only lifts the freeze, once an operator has
    dealt with the orders (claims, places) that may have been lost (README: runbook
    'Redis lost data'). Exit code 1 if one was not frozen, 2 for two options or more."""
    if coupon + queue + lottery > 1:
        typer.echo("--coupon, --queue, --lottery: one family at a time", err=True)
        raise typer.Exit(2)
    noun = "coupon" if coupon else "queue" if queue else "lottery" if lottery else "item"
    with servers(load_settings()) as settings:
        missing = asyncio.run(_recover(settings, ids, coupon=coupon, queue=queue, lottery=lottery))
    for entity_id in ids:
        state = "was not frozen" if entity_id in missing else "resumed"
        print(f"{noun} {entity_id}: {state}")
    raise typer.Exit(1 if missing else 0)


async def _recover(
    settings: Settings,
    ids: list[int],
    *,
    coupon: bool,
    queue: bool = False,
    lottery: bool = False,
) -> list[int]:
    from app.flows.freshness import CLAIMS, LOTTERIES, QUEUES, SALES, CounterFamily, recover

    family: CounterFamily[Any] = (
        CLAIMS if coupon else QUEUES if queue else LOTTERIES if lottery else SALES
    )
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

    with servers(load_settings()) as settings:
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

    async with build_services(settings) as services:
        report = await sale_audit.audit(services=services, event_id=event_id)
        return report, await audit_coupons(services=services)


def reconcile(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="A settlement file (CSV)."),
    ],
) -> None:
    """Compare a payment settlement file with the orders and store the result, as POST
    /api/v1/admin/reconciliations does; printed as JSON. Exit code 0 if every row matched
    and no order is missing from the file, 1 if any id is listed, 2 if the file is
    malformed (the line is named)."""
    from app.gateways.settlement import MalformedSettlement

    data = file.read_bytes()
    with servers(load_settings()) as settings:
        try:
            result = asyncio.run(_reconcile(settings, data))
        except MalformedSettlement as exc:
            _refuse(f"{file}: {exc.detail}")
    print(result.model_dump_json(indent=2))
    raise typer.Exit(1 if result.mismatches else 0)


async def _reconcile(settings: Settings, data: bytes) -> "ReconciliationRead":
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.payments import reconciliation
    from app.payments.schemas import ReconciliationRead

    async with build_services(settings) as services:

        async def change(session: AsyncSession) -> ReconciliationRead:
            row = await reconciliation.reconcile(
                session=session, services=services, data=data, source="cli"
            )
            return ReconciliationRead.model_validate(row)

        return await in_transaction(services, change)


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
    with servers(load_settings()) as settings:
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
    from app.coupons.grants import create_grant
    from app.coupons.schemas import GrantCreate
    from app.errors import AppError
    from app.flows.grants import GrantRunner
    from app.jobs.models import JobStatus
    from app.jobs.service import get_job

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


def report(
    event_id: Annotated[
        int | None, typer.Argument(min=1, help="The event to report on (or --campaign).")
    ] = None,
    campaign: Annotated[
        int | None, typer.Option(min=1, help="Report on this campaign instead of an event.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Directory to write into (created).")] = Path("."),
    compare: Annotated[
        int | None, typer.Option(min=1, help="An earlier event to compare with.")
    ] = None,
) -> None:
    """Write a sale's report: event-ID.json (totals, items, per-minute series, and the
    comparison), event-ID.csv (per item and total) and event-ID.png (units over time);
    or, with --campaign, campaign-ID.json, .csv and .png (GMV against its target)."""
    if (event_id is None) == (campaign is None):
        _refuse("Give an EVENT_ID or --campaign ID (one of them).")
    if campaign is not None and compare is not None:
        _refuse("--compare is for an event: a campaign compares with its baseline campaign.")
    with servers(load_settings()) as settings:
        if campaign is not None:
            name, (data, table, png) = f"campaign-{campaign}", _campaign_files(settings, campaign)
        else:
            assert event_id is not None
            name, (data, table, png) = (
                f"event-{event_id}",
                _event_files(settings, event_id, compare),
            )
    out.mkdir(parents=True, exist_ok=True)
    files = [out / f"{name}.{ext}" for ext in ("json", "csv", "png")]
    files[0].write_text(data)
    files[1].write_text(table)
    files[2].write_bytes(png)
    for written in files:
        print(written)


def _refuse(message: str) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _event_files(settings: Settings, event_id: int, compare: int | None) -> tuple[str, str, bytes]:
    from app.events.errors import EventNotFound
    from app.reports.service import report_csv

    try:
        built, png = asyncio.run(_report(settings, event_id, compare))
    except EventNotFound as exc:
        _refuse(str(exc))
    return built.model_dump_json(indent=2) + "\n", report_csv(built), png


async def _report(
    settings: Settings, event_id: int, compare: int | None
) -> "tuple[EventReport, bytes]":
    from app.reports import service as reports

    async with build_services(settings) as services, services.sessionmaker() as session:
        built = await reports.build_report(
            session=session, services=services, event_id=event_id, compare_with=compare
        )
        return built, await reports.report_chart(session=session, report=built)


def _campaign_files(settings: Settings, campaign_id: int) -> tuple[str, str, bytes]:
    from app.campaigns.errors import CampaignNotFound
    from app.reports.campaign_service import campaign_csv

    try:
        built, png = asyncio.run(_campaign_report(settings, campaign_id))
    except CampaignNotFound as exc:
        _refuse(str(exc))
    return built.model_dump_json(indent=2) + "\n", campaign_csv(built), png


async def _campaign_report(settings: Settings, campaign_id: int) -> "tuple[CampaignReport, bytes]":
    from app.reports import campaign_service as reports

    async with build_services(settings) as services, services.sessionmaker() as session:
        built = await reports.build_campaign_report(session=session, campaign_id=campaign_id)
        return built, await reports.campaign_chart(built)


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
    with servers(load_settings()) as settings:
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
