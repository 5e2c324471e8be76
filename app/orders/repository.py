"""Every SQL statement of the orders domain."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import TextClause, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.orders.models import (
    RETURNING_STATUSES,
    Order,
    OrderStatus,
    OrderTransition,
    TransitionCause,
)

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


async def stored_order_ids(session: AsyncSession, order_ids: Iterable[str]) -> set[str]:
    """Which of these orders are in Postgres, whatever their status."""
    ids = list(order_ids)
    if not ids:
        return set()
    rows = await session.scalars(
        text("SELECT id FROM orders WHERE id = ANY(CAST(:ids AS text[]))"), {"ids": ids}
    )
    return set(rows.all())


async def orders_by_idempotency_key(
    session: AsyncSession, *, item_id: int, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """Stored orders of the item for these (user id, Idempotency-Key) pairs -> order id."""
    pairs = list(keys)
    if not pairs:
        return {}
    rows = await session.execute(
        text(
            """
            SELECT o.user_id, o.idempotency_key, o.id
            FROM orders AS o
            JOIN unnest(CAST(:users AS text[]), CAST(:keys AS text[])) AS k(user_id, idem)
              ON o.user_id = k.user_id AND o.idempotency_key = k.idem
            WHERE o.item_id = :item_id
            """
        ),
        {"users": [u for u, _ in pairs], "keys": [k for _, k in pairs], "item_id": item_id},
    )
    return {(user_id, key): order_id for user_id, key, order_id in rows}


# -- the lifecycle: status changes --------------------------------------------------

# The column stamped with the time of each status change.
_STAMPED = {
    OrderStatus.PAID: "paid_at",
    OrderStatus.CANCELLED: "cancelled_at",
    OrderStatus.REFUNDED: "refunded_at",
}


def _move_statement(to_status: OrderStatus) -> TextClause:
    # One conditional UPDATE decides the race (`AND status = :from_status`): of two
    # concurrent changes of one order, the second finds the row changed and moves nothing.
    # The transition rows are written by the same statement, for the moved orders only.
    return text(
        f"""
        WITH moved AS (
            UPDATE orders
            SET status = :to_status, {_STAMPED[to_status]} = now(), updated_at = now(),
                payment_reference = coalesce(:reference, payment_reference)
            WHERE id = ANY(CAST(:ids AS text[])) AND status = :from_status
            RETURNING id
        )
        INSERT INTO order_transitions (order_id, from_status, to_status, cause)
        SELECT id, :from_status, :to_status, CAST(:cause AS text) FROM moved
        RETURNING order_id
        """
    )


async def move_orders(
    session: AsyncSession,
    *,
    order_ids: Sequence[str],
    from_status: OrderStatus,
    to_status: OrderStatus,
    cause: TransitionCause,
    payment_reference: str | None = None,
) -> list[str]:
    """Move the orders still in `from_status` to `to_status`, recording each transition;
    returns the ids that moved (the others were not in `from_status`)."""
    if not order_ids:
        return []
    rows = await session.scalars(
        _move_statement(to_status),
        {
            "ids": list(order_ids),
            "from_status": from_status.value,
            "to_status": to_status.value,
            "cause": cause.value,
            "reference": payment_reference,
        },
    )
    return list(rows.all())


async def lock_overdue_orders(session: AsyncSession, *, limit: int) -> list[str]:
    """Unpaid orders past their payment deadline, oldest first, locked for this
    transaction; rows another sweep holds are skipped, not waited for."""
    rows = await session.scalars(
        text(
            """
            SELECT id FROM orders
            WHERE status = 'pending_payment' AND payment_deadline <= now()
            ORDER BY payment_deadline
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
            """
        ),
        {"limit": limit},
    )
    return list(rows.all())


async def list_transitions(session: AsyncSession, order_id: str) -> list[OrderTransition]:
    rows = await session.scalars(
        select(OrderTransition)
        .where(OrderTransition.order_id == order_id)
        .order_by(OrderTransition.id)
    )
    return list(rows.all())


# -- the lifecycle: giving stock back -----------------------------------------------


@dataclass(frozen=True, slots=True)
class StockReturn:
    """A cancelled or refunded order whose units are not back yet."""

    order_id: str
    user_id: str
    item_id: int
    quantity: int
    # True: back on sale (Redis stock, a `released` row). False: the sale had ended when
    # the order was cancelled or refunded, so the units go back on hand (`restocked`).
    # Decided from stored times only, so every retry of one order decides the same way.
    back_on_sale: bool


_LOCK_RETURNS = text(
    f"""
    SELECT o.id, o.user_id, o.item_id, o.quantity,
           coalesce(o.refunded_at, o.cancelled_at) < e.ends_at AS back_on_sale
    FROM orders AS o
    JOIN event_items AS i ON i.id = o.item_id
    JOIN events AS e ON e.id = i.event_id
    WHERE o.status IN ({RETURNING_STATUSES}) AND o.stock_returned_at IS NULL
      AND (CAST(:ids AS text[]) IS NULL OR o.id = ANY(CAST(:ids AS text[])))
    ORDER BY o.id
    LIMIT :limit
    FOR UPDATE OF o SKIP LOCKED
    """
)


async def lock_stock_returns(
    session: AsyncSession, *, order_ids: Sequence[str] | None, limit: int
) -> list[StockReturn]:
    """Cancelled or refunded orders whose units are not back yet (these, or any when
    `order_ids` is None), locked for this transaction. An order another process is
    returning right now is skipped: that process finishes it, or its crash unlocks it."""
    rows = await session.execute(
        _LOCK_RETURNS,
        {"ids": None if order_ids is None else list(order_ids), "limit": limit},
    )
    return [
        StockReturn(
            order_id=row.id,
            user_id=row.user_id,
            item_id=row.item_id,
            quantity=row.quantity,
            back_on_sale=bool(row.back_on_sale),
        )
        for row in rows
    ]


# The ledger rows are written with ON CONFLICT DO NOTHING on (order_id, reason): a retry
# after a crash between the Redis release and this commit books nothing twice.
_RECORD_RELEASED = text(
    """
    WITH booked AS (
        INSERT INTO inventory_ledger (sku, item_id, order_id, reason, item_stock_delta)
        SELECT i.sku, o.item_id, o.id, 'released', o.quantity
        FROM orders AS o JOIN event_items AS i ON i.id = o.item_id
        WHERE o.id = ANY(CAST(:ids AS text[]))
        ORDER BY o.id
        ON CONFLICT (order_id, reason) WHERE order_id IS NOT NULL DO NOTHING
        RETURNING order_id
    )
    UPDATE orders SET stock_returned_at = now()
    WHERE id = ANY(CAST(:ids AS text[])) AND stock_returned_at IS NULL
    RETURNING id
    """
)

# Back on hand: the ledger row and the SKU's on_hand move together, and on_hand only for
# rows inserted now. item_stock_delta stays 0: the units never re-enter the sale's stock,
# so sum(item_stock_delta) of the item still equals its Redis stock.
_RECORD_RESTOCKED = text(
    """
    WITH booked AS (
        INSERT INTO inventory_ledger
            (sku, item_id, order_id, reason, on_hand_delta, item_stock_delta)
        SELECT i.sku, o.item_id, o.id, 'restocked', o.quantity, 0
        FROM orders AS o JOIN event_items AS i ON i.id = o.item_id
        WHERE o.id = ANY(CAST(:ids AS text[]))
        ORDER BY o.id
        ON CONFLICT (order_id, reason) WHERE order_id IS NOT NULL DO NOTHING
        RETURNING sku, on_hand_delta
    ), per_sku AS (
        SELECT sku, sum(on_hand_delta) AS units FROM booked GROUP BY sku
    ), restocked AS (
        UPDATE skus SET on_hand = skus.on_hand + per_sku.units, updated_at = now()
        FROM per_sku WHERE skus.sku = per_sku.sku
        RETURNING skus.sku
    )
    UPDATE orders SET stock_returned_at = now()
    WHERE id = ANY(CAST(:ids AS text[])) AND stock_returned_at IS NULL
    RETURNING id
    """
)

# Two restocks touching the same SKUs lock them in one order, so they cannot deadlock.
_LOCK_SKUS_OF_ORDERS = text(
    """
    SELECT s.sku FROM skus AS s
    WHERE s.sku IN (
        SELECT i.sku FROM orders AS o JOIN event_items AS i ON i.id = o.item_id
        WHERE o.id = ANY(CAST(:ids AS text[]))
    )
    ORDER BY s.sku
    FOR UPDATE OF s
    """
)


async def record_released(session: AsyncSession, order_ids: Sequence[str]) -> int:
    """Book `released` rows (item_stock_delta = +quantity) for orders whose units went
    back to the sale in Redis, and mark them returned; returns how many were marked."""
    if not order_ids:
        return 0
    rows = await session.scalars(_RECORD_RELEASED, {"ids": sorted(order_ids)})
    return len(rows.all())


async def record_restocked(session: AsyncSession, order_ids: Sequence[str]) -> int:
    """Book `restocked` rows (on_hand_delta = +quantity) and raise the SKUs' on_hand for
    orders whose sale had ended, and mark them returned; returns how many were marked."""
    if not order_ids:
        return 0
    ids = sorted(order_ids)
    await session.execute(_LOCK_SKUS_OF_ORDERS, {"ids": ids})
    rows = await session.scalars(_RECORD_RESTOCKED, {"ids": ids})
    return len(rows.all())


_RETURNS_DUE = text(
    f"""
    SELECT o.id, o.user_id, o.item_id, o.quantity,
           coalesce(o.refunded_at, o.cancelled_at) < e.ends_at AS back_on_sale
    FROM orders AS o
    JOIN event_items AS i ON i.id = o.item_id
    JOIN events AS e ON e.id = i.event_id
    WHERE o.status IN ({RETURNING_STATUSES}) AND o.stock_returned_at IS NULL
      AND o.item_id = ANY(CAST(:item_ids AS bigint[]))
    ORDER BY o.id
    """
)


async def stock_returns_due(session: AsyncSession, item_ids: Iterable[int]) -> list[StockReturn]:
    """Cancelled or refunded orders of these items whose units are not back yet: a plain
    read for the audit (lock_stock_returns is the one that claims them)."""
    ids = list(item_ids)
    if not ids:
        return []
    rows = await session.execute(_RETURNS_DUE, {"item_ids": ids})
    return [
        StockReturn(
            order_id=row.id,
            user_id=row.user_id,
            item_id=row.item_id,
            quantity=row.quantity,
            back_on_sale=bool(row.back_on_sale),
        )
        for row in rows
    ]
