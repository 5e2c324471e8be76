"""Every SQL statement of the live stats: what Postgres knows of a sale's orders."""

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.orders.models import SOLD_STATUSES


@dataclass(frozen=True, slots=True)
class ItemOrders:
    """One item's stored orders summed up."""

    orders: int
    units: int
    paid_orders: int
    paid_units: int
    paid_amount: Decimal


EMPTY = ItemOrders(orders=0, units=0, paid_orders=0, paid_units=0, paid_amount=Decimal("0.00"))

_BY_ITEM = text(
    f"""
    SELECT item_id,
           count(*) AS orders,
           coalesce(sum(quantity), 0) AS units,
           count(*) FILTER (WHERE status IN ({SOLD_STATUSES})) AS paid_orders,
           coalesce(sum(quantity) FILTER (WHERE status IN ({SOLD_STATUSES})), 0) AS paid_units,
           coalesce(sum(amount) FILTER (WHERE status IN ({SOLD_STATUSES})), 0) AS paid_amount
    FROM orders
    WHERE event_id = :event_id
    GROUP BY item_id
    """
)


async def orders_by_item(session: AsyncSession, event_id: int) -> dict[int, ItemOrders]:
    rows = await session.execute(_BY_ITEM, {"event_id": event_id})
    return {
        row.item_id: ItemOrders(
            orders=int(row.orders),
            units=int(row.units),
            paid_orders=int(row.paid_orders),
            paid_units=int(row.paid_units),
            paid_amount=Decimal(row.paid_amount),
        )
        for row in rows
    }
