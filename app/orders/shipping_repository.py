"""The orders domain's SQL for shipments: the paid orders whose event's ship-by has
passed (marking one shipped is a status change: repository.move_orders)."""

from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.orders.models import Order

# Paid, unshipped orders of events whose ship-by has passed (a regular order has no
# event, so no ship-by). Walks events by ship_by (ix_events_ship_by) and each one's paid
# orders by ix_orders_unshipped_event_id. SQL text: the events table is a layer above.
_OVERDUE = """
    FROM orders AS o JOIN events AS e ON e.id = o.event_id
    WHERE o.status = 'paid' AND e.ship_by <= :now
"""


async def overdue_orders(
    session: AsyncSession, *, now: datetime, limit: int, offset: int
) -> list[tuple[Order, datetime]]:
    """The overdue orders at `now`, each with its ship-by; the most overdue first (then
    the earliest paid)."""
    found = (
        await session.execute(
            text(
                f"SELECT o.id, e.ship_by {_OVERDUE} "
                "ORDER BY e.ship_by, o.paid_at, o.id LIMIT :limit OFFSET :offset"
            ),
            {"now": now, "limit": limit, "offset": offset},
        )
    ).all()
    if not found:
        return []
    rows = await session.scalars(select(Order).where(Order.id.in_([r.id for r in found])))
    by_id = {order.id: order for order in rows}
    return [(by_id[r.id], r.ship_by) for r in found if r.id in by_id]


async def count_overdue(session: AsyncSession, *, now: datetime, event_id: int | None) -> int:
    """How many orders overdue_orders() lists at `now` (of one event, if given)."""
    where = "" if event_id is None else " AND o.event_id = :event_id"
    params: dict[str, object] = {"now": now}
    if event_id is not None:
        params["event_id"] = event_id
    return int(await session.scalar(text(f"SELECT count(*) {_OVERDUE}{where}"), params) or 0)
