"""Every SQL statement of the campaign report. A campaign's orders are the rows stamped
with its id (orders.campaign_id: its events' seckill orders, and regular orders that
used its coupons or promotions); paid and GMV mean what they mean in the sale report."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.reports.repository import GMV, PAID

# The phase of an order accepted in no window of its campaign.
OUTSIDE = "outside"


@dataclass(frozen=True, slots=True)
class PhaseWindow:
    phase: str
    starts_at: datetime  # included
    ends_at: datetime  # excluded


@dataclass(frozen=True, slots=True)
class SegmentRow:
    """The campaign's orders of one channel (None: none given) in one phase."""

    channel: str | None
    phase: str
    orders: int
    units: int
    paid_orders: int
    gmv: Decimal


def _phase_case(windows: Sequence[PhaseWindow]) -> tuple[str, dict[str, Any]]:
    """A CASE naming the window each order was accepted in, with its parameters. The
    windows come in the order app.campaigns.service.phase_at tries them, start included
    and end excluded as there, so both place an order alike."""
    branches: list[str] = []
    params: dict[str, Any] = {}
    for index, window in enumerate(windows):
        branches.append(
            f"WHEN accepted_at >= :starts_{index} AND accepted_at < :ends_{index} "
            f"THEN CAST(:phase_{index} AS text)"
        )
        params |= {
            f"starts_{index}": window.starts_at,
            f"ends_{index}": window.ends_at,
            f"phase_{index}": window.phase,
        }
    if not branches:
        return "CAST(:outside AS text)", {"outside": OUTSIDE}
    return f"CASE {' '.join(branches)} ELSE CAST(:outside AS text) END", params | {
        "outside": OUTSIDE
    }


async def segments(
    session: AsyncSession, campaign_id: int, windows: Sequence[PhaseWindow]
) -> list[SegmentRow]:
    """The campaign's orders counted per channel and phase: every other figure of the
    report but new buyers and the series adds these up."""
    phase, params = _phase_case(windows)
    statement = text(
        f"""
        SELECT channel, {phase} AS phase,
               count(*) AS orders,
               coalesce(sum(quantity), 0) AS units,
               count(*) FILTER (WHERE {PAID}) AS paid_orders,
               {GMV} AS gmv
        FROM orders
        WHERE campaign_id = :campaign_id
        GROUP BY 1, 2
        ORDER BY 1, 2
        """
    )
    rows = await session.execute(statement, params | {"campaign_id": campaign_id})
    return [
        SegmentRow(
            channel=row.channel,
            phase=row.phase,
            orders=int(row.orders),
            units=int(row.units),
            paid_orders=int(row.paid_orders),
            gmv=Decimal(row.gmv),
        )
        for row in rows
    ]


# A buyer is new to the campaign when the first order they ever paid (refunded ones
# included: a refund does not make them a stranger) is one of its orders, and they hold a
# paid order of it (a buyer won by an order they then returned is not one it kept).
_NEW_BUYERS = text(
    f"""
    WITH buyers AS (
        SELECT DISTINCT user_id FROM orders WHERE campaign_id = :campaign_id AND {PAID}
    ), firsts AS (
        SELECT DISTINCT ON (o.user_id) o.user_id, o.campaign_id
        FROM orders AS o JOIN buyers AS b ON b.user_id = o.user_id
        WHERE o.paid_at IS NOT NULL
        ORDER BY o.user_id, o.paid_at, o.id
    )
    SELECT count(*) FROM firsts WHERE campaign_id = :campaign_id
    """
)


async def new_buyers(session: AsyncSession, campaign_id: int) -> int:
    return int(await session.scalar(_NEW_BUYERS, {"campaign_id": campaign_id}) or 0)


async def acceptance_span(
    session: AsyncSession, campaign_id: int
) -> tuple[datetime | None, datetime | None]:
    """When the campaign's first and last orders were accepted (None, None: no order)."""
    row = (
        await session.execute(
            text(
                "SELECT min(accepted_at) AS first, max(accepted_at) AS last "
                "FROM orders WHERE campaign_id = :campaign_id"
            ),
            {"campaign_id": campaign_id},
        )
    ).one()
    return row.first, row.last


@dataclass(frozen=True, slots=True)
class GmvBucketRow:
    bucket: int  # whole buckets after the origin
    paid_orders: int
    gmv: Decimal


# Paid orders and their GMV per bucket of acceptance time, counted from `origin` (the
# sale report's buckets, for a campaign's orders).
_GMV_BUCKETS = text(
    f"""
    SELECT floor(extract(epoch FROM accepted_at - CAST(:origin AS timestamptz))
                 / CAST(:seconds AS double precision))::bigint AS bucket,
           count(*) FILTER (WHERE {PAID}) AS paid_orders,
           {GMV} AS gmv
    FROM orders
    WHERE campaign_id = :campaign_id
    GROUP BY 1
    ORDER BY 1
    """
)


async def gmv_per_bucket(
    session: AsyncSession, campaign_id: int, *, origin: datetime, seconds: float
) -> list[GmvBucketRow]:
    rows = await session.execute(
        _GMV_BUCKETS, {"campaign_id": campaign_id, "origin": origin, "seconds": seconds}
    )
    return [
        GmvBucketRow(bucket=int(row.bucket), paid_orders=int(row.paid_orders), gmv=Decimal(row.gmv))
        for row in rows
    ]
