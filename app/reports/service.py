"""Building the report of a sale from Postgres (participants from the live stats)."""

import asyncio
import csv
import io
import logging
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.stats import access_stats
from app.container import Container
from app.events import service as events
from app.live import service as live
from app.members.stats import members_report
from app.reminders import service as reminders
from app.reports import chart, repository
from app.reports.schemas import (
    Comparison,
    EventReport,
    ItemReport,
    MinutePoint,
    ReportTotals,
    ShippingReport,
    Timeline,
)
from app.returns.models import ReturnReason
from app.returns.stats import after_sales

logger = logging.getLogger(__name__)
CENT = Decimal("0.01")
COMPARED = (
    "participants",
    "buyers",
    "orders",
    "units",
    "paid_orders",
    "paid_units",
    "gmv",
    "conversion",
    "average_order_value",
)


def ratio(part: float, whole: float) -> float | None:
    """A share or rate as the reports give it: 4 decimals, None for a zero whole."""
    return round(part / whole, 4) if whole else None


def average_order_value(gmv: Decimal, paid_orders: int) -> Decimal | None:
    """GMV per paid order, to the cent (None without a paid order)."""
    return (gmv / paid_orders).quantize(CENT, ROUND_HALF_UP) if paid_orders else None


def change(mine: float | Decimal | None, theirs: float | Decimal | None) -> float | None:
    """How much this figure moved from the other: (mine - theirs) / theirs, 4 decimals
    (0.1 = 10% more); None when either is unknown or the other is zero."""
    if mine is None or theirs is None or not theirs:
        return None
    return round(float(mine) / float(theirs) - 1, 4)


def _seconds(later: datetime | None, earlier: datetime) -> float | None:
    return None if later is None else round((later - earlier).total_seconds(), 3)


async def _participants(*, session: AsyncSession, services: Container, event_id: int) -> int | None:
    try:
        stats = await live.compute_stats(session=session, services=services, event_id=event_id)
    except RedisError:
        logger.warning("participants unavailable: Redis unreachable", exc_info=True)
        return None
    return stats.participants if stats.attempts else None


def _totals(
    found: repository.Totals, participants: int | None, starts_at: datetime
) -> ReportTotals:
    return ReportTotals(
        participants=participants,
        buyers=found.buyers,
        orders=found.orders,
        units=found.units,
        pending_orders=found.pending_orders,
        paid_orders=found.paid_orders,
        paid_units=found.paid_units,
        unpaid_orders=found.cancelled_orders,
        cancelled_orders=found.cancelled_orders,
        cancelled_units=found.cancelled_units,
        timed_out_orders=found.timed_out_orders,
        refunded_orders=found.refunded_orders,
        refunded_units=found.refunded_units,
        gmv=found.gmv,
        refunded_amount=found.refunded_amount,
        conversion=ratio(found.buyers, participants or 0),
        payment_rate=ratio(found.paid_orders, found.orders),
        average_order_value=average_order_value(found.gmv, found.paid_orders),
        first_sale_at=found.first_sale_at,
        time_to_first_sale_seconds=_seconds(found.first_sale_at, starts_at),
        member_orders=found.member_orders,
        member_units=found.member_units,
        member_paid_units=found.member_paid_units,
        member_gmv=found.member_gmv,
    )


async def build_report(
    *, session: AsyncSession, services: Container, event_id: int, compare_with: int | None = None
) -> EventReport:
    event = await events.get_event_row(session=session, event_id=event_id)
    participants = await _participants(session=session, services=services, event_id=event_id)
    totals = _totals(await repository.totals(session, event_id), participants, event.starts_at)
    sold_out = await repository.sold_out_at(session, event_id)
    items = []
    for item in event.items:
        found = await repository.totals(session, event_id, item.id)
        returned = await after_sales(
            session=session, scope="event_id", scope_id=event_id, item_id=item.id
        )
        items.append(
            ItemReport(
                id=item.id,
                sku=item.sku,
                name=item.name,
                allocated=item.stock,
                orders=found.orders,
                units=found.units,
                paid_units=found.paid_units,
                cancelled_units=found.cancelled_units,
                refunded_units=found.refunded_units,
                gmv=found.gmv,
                member_units=found.member_units,
                member_paid_units=found.member_paid_units,
                member_gmv=found.member_gmv,
                first_sale_at=found.first_sale_at,
                sold_out_at=sold_out.get(item.id),
                sell_out_seconds=_seconds(sold_out.get(item.id), event.starts_at),
                returns_by_reason=returned.returns_by_reason,
                refund_rate=returned.refund_rate,
            )
        )
    series = [
        MinutePoint(
            minute=row.minute,
            item_id=row.item_id,
            orders=row.orders,
            units=row.units,
            paid_units=row.paid_units,
            gmv=row.gmv,
        )
        for row in await repository.per_minute(session, event_id)
    ]
    shipped = await repository.shipping(session, event_id)
    returned = await after_sales(session=session, scope="event_id", scope_id=event.id)
    report = EventReport(
        event_id=event.id,
        name=event.name,
        starts_at=event.starts_at,
        ends_at=event.ends_at,
        generated_at=datetime.now(UTC),
        totals=totals,
        items=items,
        series=series,
        access=await access_stats(session=session, event=event),
        reminders=await reminders.counts_of(session=session, event_id=event_id),
        shipping=ShippingReport(
            ship_within_days=event.ship_within_days, ship_by=event.ship_by, **asdict(shipped)
        ),
        members=await members_report(
            session=session,
            scope="event_id",
            scope_id=event.id,
            window=(event.starts_at, event.ends_at),
        ),
        returns_by_reason=returned.returns_by_reason,
        refund_rate=returned.refund_rate,
    )
    if compare_with is not None:
        other = await build_report(session=session, services=services, event_id=compare_with)
        report.compared_with = compare(report, other)
    return report


def _chart_window(report: EventReport, last_sale: datetime | None) -> tuple[datetime, datetime]:
    """From the first moment anyone could buy (early access included) to the last sale
    of a sale that sold out (a sell-out in 6 s of a 10-minute window is drawn over
    those seconds), else to the end of the window (now, while it is open)."""
    origin = min(report.starts_at, report.totals.first_sale_at or report.starts_at)
    sold_out = bool(report.items) and all(i.sold_out_at is not None for i in report.items)
    if sold_out and last_sale is not None:
        until = last_sale
    else:
        opened = report.generated_at > report.starts_at
        until = min(report.ends_at, report.generated_at) if opened else report.ends_at
        until = max(until, last_sale or until)
    return origin, max(until, origin + timedelta(seconds=1))


async def sales_timeline(*, session: AsyncSession, report: EventReport) -> Timeline:
    """Cumulative units per item over the sale, in buckets fitted to its span (tenths of
    a second for a sell-out in seconds, minutes for a day-long sale)."""
    origin, until = _chart_window(report, await repository.last_sale_at(session, report.event_id))
    span = (until - origin).total_seconds()
    seconds = chart.nice_step(span, chart.MAX_BUCKETS)
    rows = await repository.units_per_bucket(
        session, report.event_id, origin=origin, seconds=seconds
    )
    # Up to the bucket of `until`, and of the last sale (Postgres's division decides it).
    count = max([int(span // seconds) + 1, *(row.bucket + 1 for row in rows)])
    per_bucket = {item.id: [0] * count for item in report.items}
    for row in rows:
        if row.item_id in per_bucket:
            per_bucket[row.item_id][max(row.bucket, 0)] += row.units
    units = {}
    for item_id, buckets in per_bucket.items():
        running = [0]
        for added in buckets:
            running.append(running[-1] + added)
        units[item_id] = running
    moments = [origin + timedelta(seconds=k * seconds) for k in range(count + 1)]
    return Timeline(bucket_seconds=seconds, moments=moments, units=units)


async def report_chart(*, session: AsyncSession, report: EventReport) -> bytes:
    """The report's PNG, drawn off the event loop."""
    timeline = await sales_timeline(session=session, report=report)
    return await asyncio.to_thread(chart.report_png, report, timeline)


def compare(report: EventReport, other: EventReport) -> Comparison:
    changes = {
        name: change(getattr(report.totals, name), getattr(other.totals, name)) for name in COMPARED
    }
    return Comparison(event_id=other.event_id, name=other.name, totals=other.totals, change=changes)


CSV_COLUMNS = (
    "item_id",
    "sku",
    "name",
    "allocated",
    "orders",
    "units",
    "paid_units",
    "cancelled_units",
    "refunded_units",
    "gmv",
    "first_sale_at",
    "sold_out_at",
    "sell_out_seconds",
    "member_units",
    "member_paid_units",
    "member_gmv",
    "refund_rate",
    *(f"returns_{reason}" for reason in ReturnReason),
)


# A text cell starting with one of these is a formula to a spreadsheet (OWASP's CSV
# injection list): an item named "=HYPERLINK(...)" would run when an operator opens the
# report. Such a cell gets a leading `'`, which spreadsheets read as "text" and hide.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_STARTS) else value
    return str(value)


def report_csv(report: EventReport) -> str:
    """One row per item, then a total row (`item_id` = "all"). Rows end in CRLF (RFC 4180);
    the csv module quotes a cell holding any character of the line terminator, so with
    CRLF a bare CR inside a name is quoted too instead of splitting the row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in report.items:
        writer.writerow(
            [
                csv_cell(v)
                for v in (
                    item.id,
                    item.sku,
                    item.name,
                    item.allocated,
                    item.orders,
                    item.units,
                    item.paid_units,
                    item.cancelled_units,
                    item.refunded_units,
                    item.gmv,
                    item.first_sale_at,
                    item.sold_out_at,
                    item.sell_out_seconds,
                    item.member_units,
                    item.member_paid_units,
                    item.member_gmv,
                    item.refund_rate,
                    *(item.returns_by_reason[r] for r in ReturnReason),
                )
            ]
        )
    t = report.totals
    writer.writerow(
        [
            csv_cell(v)
            for v in (
                "all",
                "",
                report.name,
                sum(i.allocated for i in report.items),
                t.orders,
                t.units,
                t.paid_units,
                t.cancelled_units,
                t.refunded_units,
                t.gmv,
                t.first_sale_at,
                None,
                None,
                t.member_units,
                t.member_paid_units,
                t.member_gmv,
                report.refund_rate,
                *(report.returns_by_reason[r] for r in ReturnReason),
            )
        ]
    )
    return out.getvalue()
