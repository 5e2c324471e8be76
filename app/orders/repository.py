"""Every SQL statement of the orders domain."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.orders.models import Order, OrderStatus

# Orders whose units are gone from the sale: everything but a cancellation or refund.
LIVE_STATUSES = (OrderStatus.PENDING_PAYMENT.value, OrderStatus.PAID.value)


async def units_sold_by_item(session: AsyncSession, item_ids: Iterable[int]) -> dict[int, int]:
    ids = list(item_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(Order.item_id, func.sum(Order.quantity))
        .where(Order.item_id.in_(ids), Order.status.in_(LIVE_STATUSES))
        .group_by(Order.item_id)
    )
    sold = {item_id: int(units) for item_id, units in rows}
    return {item_id: sold.get(item_id, 0) for item_id in ids}


async def units_bought_by_user(session: AsyncSession, item_id: int) -> dict[str, int]:
    rows = await session.execute(
        select(Order.user_id, func.sum(Order.quantity))
        .where(Order.item_id == item_id, Order.status.in_(LIVE_STATUSES))
        .group_by(Order.user_id)
    )
    return {user_id: int(units) for user_id, units in rows}


async def get_order(session: AsyncSession, order_id: str) -> Order | None:
    return await session.get(Order, order_id, populate_existing=True)


async def list_user_orders(
    session: AsyncSession, *, user_id: str, limit: int, offset: int
) -> list[Order]:
    rows = await session.scalars(
        select(Order)
        .where(Order.user_id == user_id)
        .order_by(Order.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows.all())


@dataclass(frozen=True, slots=True)
class NewOrder:
    """An accepted order as the order stream carries it."""

    id: str
    user_id: str
    event_id: int
    item_id: int
    quantity: int
    unit_price: Decimal
    accepted_at: datetime
    idempotency_key: str | None


# One statement per batch: unnest the columns, insert what is new (a re-delivered entry
# hits ON CONFLICT and is skipped), and write a `sold` ledger row for each inserted order.
_INSERT_ORDERS = text(
    """
    WITH input AS (
        SELECT * FROM unnest(
            CAST(:ids AS text[]), CAST(:user_ids AS text[]), CAST(:event_ids AS bigint[]),
            CAST(:item_ids AS bigint[]), CAST(:quantities AS integer[]),
            CAST(:unit_prices AS numeric[]), CAST(:accepted_ats AS timestamptz[]),
            CAST(:idempotency_keys AS text[])
        ) AS t(id, user_id, event_id, item_id, quantity, unit_price, accepted_at, idem)
    ), inserted AS (
        INSERT INTO orders (id, user_id, event_id, item_id, quantity, unit_price, amount,
                            status, idempotency_key, accepted_at, payment_deadline)
        SELECT id, user_id, event_id, item_id, quantity, unit_price, unit_price * quantity,
               'pending_payment', idem, accepted_at,
               accepted_at + make_interval(secs => :timeout_seconds)
        FROM input
        ON CONFLICT (id) DO NOTHING
        RETURNING id, item_id, quantity
    )
    INSERT INTO inventory_ledger (sku, item_id, order_id, reason, item_stock_delta)
    SELECT items.sku, inserted.item_id, inserted.id, 'sold', -inserted.quantity
    FROM inserted JOIN event_items AS items ON items.id = inserted.item_id
    RETURNING order_id
    """
)


async def insert_orders(
    session: AsyncSession, orders: Sequence[NewOrder], *, payment_timeout_seconds: int
) -> int:
    """Store new orders as `pending_payment` with their ledger rows; returns how many
    were new (the rest were stored before)."""
    if not orders:
        return 0
    result = await session.execute(
        _INSERT_ORDERS,
        {
            "ids": [o.id for o in orders],
            "user_ids": [o.user_id for o in orders],
            "event_ids": [o.event_id for o in orders],
            "item_ids": [o.item_id for o in orders],
            "quantities": [o.quantity for o in orders],
            "unit_prices": [o.unit_price for o in orders],
            "accepted_ats": [o.accepted_at for o in orders],
            "idempotency_keys": [o.idempotency_key for o in orders],
            "timeout_seconds": float(payment_timeout_seconds),
        },
    )
    return len(result.all())
