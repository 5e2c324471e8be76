"""Every SQL statement of the sale report. All figures come from Postgres."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.orders.models import SOLD_STATUSES

# What every report counts as sold: an order paid (shipped or not) and not refunded (a
# refund moves it to `refunded`); the amounts of those orders are the GMV. The sale's and
# the campaign's reports both build their statements from these two.
PAID = f"status IN ({SOLD_STATUSES})"
GMV = f"coalesce(sum(amount) FILTER (WHERE {PAID}), 0)"


@dataclass(frozen=True, slots=True)
class Totals:
    orders: int
    units: int
    buyers: int
    pending_orders: int
    paid_orders: int
    paid_units: int
    cancelled_orders: int
    cancelled_units: int
    timed_out_orders: int
    refunded_orders: int
    refunded_units: int
    gmv: Decimal
    refunded_amount: Decimal
    first_sale_at: datetime | None
    # Members' orders (the buyer's membership when the order was placed).
    member_orders: int
    member_units: int
    member_paid_units: int
    member_gmv: Decimal


_TOTALS = text(
    f"""
    SELECT count(*) AS orders,
           coalesce(sum(o.quantity), 0) AS units,
           count(DISTINCT o.user_id) AS buyers,
           count(*) FILTER (WHERE o.status = 'pending_payment') AS pending_orders,
           count(*) FILTER (WHERE {PAID}) AS paid_orders,
           coalesce(sum(o.quantity) FILTER (WHERE {PAID}), 0) AS paid_units,
           count(*) FILTER (WHERE o.status = 'cancelled') AS cancelled_orders,
           coalesce(sum(o.quantity) FILTER (WHERE o.status = 'cancelled'), 0)
               AS cancelled_units,
           count(*) FILTER (WHERE o.status = 'cancelled' AND EXISTS (
               SELECT 1 FROM order_transitions AS t
               WHERE t.order_id = o.id AND t.cause = 'payment_timeout')) AS timed_out_orders,
           count(*) FILTER (WHERE o.status = 'refunded') AS refunded_orders,
           coalesce(sum(o.quantity) FILTER (WHERE o.status = 'refunded'), 0)
               AS refunded_units,
           {GMV} AS gmv,
           coalesce(sum(o.amount) FILTER (WHERE o.status = 'refunded'), 0) AS refunded_amount,
           min(o.accepted_at) AS first_sale_at,
           count(*) FILTER (WHERE o.member) AS member_orders,
           coalesce(sum(o.quantity) FILTER (WHERE o.member), 0) AS member_units,
           coalesce(sum(o.quantity) FILTER (WHERE o.member AND {PAID}), 0)
               AS member_paid_units,
           coalesce(sum(o.amount) FILTER (WHERE o.member AND {PAID}), 0) AS member_gmv
    FROM orders AS o
    WHERE o.event_id = :event_id AND (CAST(:item_id AS bigint) IS NULL OR o.item_id = :item_id)
    """
)


async def totals(session: AsyncSession, event_id: int, item_id: int | None = None) -> Totals:
    row = (await session.execute(_TOTALS, {"event_id": event_id, "item_id": item_id})).one()
    return Totals(
        orders=int(row.orders),
        units=int(row.units),
        buyers=int(row.buyers),
        pending_orders=int(row.pending_orders),
        paid_orders=int(row.paid_orders),
        paid_units=int(row.paid_units),
        cancelled_orders=int(row.cancelled_orders),
        cancelled_units=int(row.cancelled_units),
        timed_out_orders=int(row.timed_out_orders),
        refunded_orders=int(row.refunded_orders),
        refunded_units=int(row.refunded_units),
        gmv=Decimal(row.gmv),
        refunded_amount=Decimal(row.refunded_amount),
        first_sale_at=row.first_sale_at,
        member_orders=int(row.member_orders),
        member_units=int(row.member_units),
        member_paid_units=int(row.member_paid_units),
        member_gmv=Decimal(row.member_gmv),
    )


# The moment an item sold out: the acceptance of the order whose units, added to all
# accepted before it, reached the item's allocation (orders later cancelled included:
# they took the stock at that moment).
_SOLD_OUT = text(
    """
    SELECT item_id, min(accepted_at) AS sold_out_at
    FROM (
        SELECT o.item_id, o.accepted_at, i.stock,
               sum(o.quantity) OVER (PARTITION BY o.item_id ORDER BY o.accepted_at, o.id)
                   AS running
        FROM orders AS o JOIN event_items AS i ON i.id = o.item_id
        WHERE o.event_id = :event_id
    ) AS r
    WHERE running >= stock
    GROUP BY item_id
    """
)


async def sold_out_at(session: AsyncSession, event_id: int) -> dict[int, datetime]:
    rows = await session.execute(_SOLD_OUT, {"event_id": event_id})
    return {row.item_id: row.sold_out_at for row in rows}


@dataclass(frozen=True, slots=True)
class MinuteRow:
    minute: datetime
    item_id: int
    orders: int
    units: int
    paid_units: int
    gmv: Decimal


_SERIES = text(
    f"""
    SELECT date_trunc('minute', accepted_at) AS minute, item_id,
           count(*) AS orders, sum(quantity) AS units,
           coalesce(sum(quantity) FILTER (WHERE {PAID}), 0) AS paid_units,
           {GMV} AS gmv
    FROM orders
    WHERE event_id = :event_id
    GROUP BY 1, 2
    ORDER BY 1, 2
    """
)


async def per_minute(session: AsyncSession, event_id: int) -> list[MinuteRow]:
    rows = await session.execute(_SERIES, {"event_id": event_id})
    return [
        MinuteRow(
            minute=row.minute,
            item_id=row.item_id,
            orders=int(row.orders),
            units=int(row.units),
            paid_units=int(row.paid_units),
            gmv=Decimal(row.gmv),
        )
        for row in rows
    ]


async def last_sale_at(session: AsyncSession, event_id: int) -> datetime | None:
    last: datetime | None = await session.scalar(
        text("SELECT max(accepted_at) FROM orders WHERE event_id = :event_id"),
        {"event_id": event_id},
    )
    return last


@dataclass(frozen=True, slots=True)
class BucketRow:
    item_id: int
    bucket: int  # whole buckets after the origin
    units: int


# Units accepted per item in buckets of any length (a tenth of a second up), counted
# from `origin`: date_trunc knows no "5 seconds".
_BUCKETS = text(
    """
    SELECT item_id,
           floor(extract(epoch FROM accepted_at - CAST(:origin AS timestamptz))
                 / CAST(:seconds AS double precision))::bigint AS bucket,
           sum(quantity) AS units
    FROM orders
    WHERE event_id = :event_id
    GROUP BY 1, 2
    ORDER BY 1, 2
    """
)


async def units_per_bucket(
    session: AsyncSession, event_id: int, *, origin: datetime, seconds: float
) -> list[BucketRow]:
    rows = await session.execute(
        _BUCKETS, {"event_id": event_id, "origin": origin, "seconds": seconds}
    )
    return [
        BucketRow(item_id=row.item_id, bucket=int(row.bucket), units=int(row.units)) for row in rows
    ]


@dataclass(frozen=True, slots=True)
class Shipping:
    shipped_orders: int
    awaiting_orders: int
    overdue_orders: int
    shipped_late_orders: int
    median_hours_to_ship: float | None
    p95_hours_to_ship: float | None


_SHIPPING = text(
    """
    SELECT count(*) FILTER (WHERE o.status = 'shipped') AS shipped_orders,
           count(*) FILTER (WHERE o.status = 'paid') AS awaiting_orders,
           count(*) FILTER (WHERE o.status = 'paid' AND e.ship_by <= now()) AS overdue_orders,
           count(*) FILTER (WHERE o.status = 'shipped' AND o.shipped_at > e.ship_by)
               AS shipped_late_orders,
           percentile_cont(0.5) WITHIN GROUP (
               ORDER BY extract(epoch FROM o.shipped_at - o.paid_at) / 3600
           ) FILTER (WHERE o.status = 'shipped') AS median_hours,
           percentile_cont(0.95) WITHIN GROUP (
               ORDER BY extract(epoch FROM o.shipped_at - o.paid_at) / 3600
           ) FILTER (WHERE o.status = 'shipped') AS p95_hours
    FROM orders AS o JOIN events AS e ON e.id = o.event_id
    WHERE o.event_id = :event_id
    """
)


async def shipping(session: AsyncSession, event_id: int) -> Shipping:
    row = (await session.execute(_SHIPPING, {"event_id": event_id})).one()
    return Shipping(
        shipped_orders=int(row.shipped_orders),
        awaiting_orders=int(row.awaiting_orders),
        overdue_orders=int(row.overdue_orders),
        shipped_late_orders=int(row.shipped_late_orders),
        median_hours_to_ship=None if row.median_hours is None else round(row.median_hours, 3),
        p95_hours_to_ship=None if row.p95_hours is None else round(row.p95_hours, 3),
    )
