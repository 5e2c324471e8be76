"""The orders domain's SQL for giving stock back: claiming cancelled or refunded orders
whose units are owed, and booking each return (back on sale or back on hand) with its
ledger rows, exactly once."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.orders.models import RETURNING_STATUSES


@dataclass(frozen=True, slots=True)
class StockReturn:
    """A cancelled or refunded order whose units are not back yet."""

    order_id: str
    user_id: str
    item_id: int | None  # None: a regular order (its units go back on hand, line by line)
    quantity: int
    # Has the item's sale not ended yet (Postgres's clock)? Only consulted when the sale
    # is not in Redis: release.lua decides everything else (app/orders/release.py).
    sale_open: bool
    # A regular order's daily promotion place, and whether the order was cancelled (only
    # a cancelled order gives its place back; a refunded one was a sale of that day).
    promotion_id: int | None = None
    promotion_day: date | None = None
    cancelled: bool = False
    # An approved return's goods: back on hand whatever the sale's state (never on sale).
    goods_returned: bool = False


# A regular order (no item) always goes back on hand: it never came from a sale.
_LOCK_RETURNS = f"""
    SELECT o.id, o.user_id, o.item_id, o.quantity,
           o.item_id IS NOT NULL AND now() < e.ends_at AS sale_open,
           o.promotion_id, o.promotion_day, o.status = 'cancelled' AS cancelled,
           o.goods_returned
    FROM orders AS o
    LEFT JOIN event_items AS i ON i.id = o.item_id
    LEFT JOIN events AS e ON e.id = i.event_id
    WHERE o.status IN ({RETURNING_STATUSES}) AND o.stock_returned_at IS NULL
      AND (CAST(:ids AS text[]) IS NULL OR o.id = ANY(CAST(:ids AS text[])))
    ORDER BY o.id
    LIMIT :limit
    FOR UPDATE OF o
"""


def _stock_returns(rows: Iterable[Row[Any]]) -> list[StockReturn]:
    return [
        StockReturn(
            order_id=row.id,
            user_id=row.user_id,
            item_id=row.item_id,
            quantity=row.quantity,
            sale_open=bool(row.sale_open),
            promotion_id=row.promotion_id,
            promotion_day=row.promotion_day,
            cancelled=bool(row.cancelled),
            goods_returned=bool(row.goods_returned),
        )
        for row in rows
    ]


# The sweep skips orders another process holds; a request returning its own orders waits
# for them instead. The losers of a status race hold the row until they roll back (their
# conditional UPDATE locked it to re-check it), and skipping would leave the winner's
# units to the next sweep. Waiting is safe: the lock's holder either returns the units
# (the re-checked `stock_returned_at IS NULL` then excludes the row) or changes nothing.
_LOCK_RETURNS_SKIPPING = text(_LOCK_RETURNS + " SKIP LOCKED")
_LOCK_RETURNS_WAITING = text(_LOCK_RETURNS)


async def lock_stock_returns(
    session: AsyncSession, *, order_ids: Sequence[str] | None, limit: int
) -> list[StockReturn]:
    """Cancelled or refunded orders whose units are not back yet (these, or any when
    `order_ids` is None), locked for this transaction. With no ids (the sweep), an order
    another process holds is skipped: that process finishes it, or its crash unlocks it;
    named orders are waited for."""
    rows = await session.execute(
        _LOCK_RETURNS_SKIPPING if order_ids is None else _LOCK_RETURNS_WAITING,
        {"ids": None if order_ids is None else list(order_ids), "limit": limit},
    )
    return _stock_returns(rows)


# The ledger rows are written with ON CONFLICT DO NOTHING on (order_id, sku, reason): a retry
# after a crash between the Redis release and this commit books nothing twice.
_RECORD_RELEASED = text(
    """
    WITH booked AS (
        INSERT INTO inventory_ledger (sku, item_id, order_id, reason, item_stock_delta)
        SELECT i.sku, o.item_id, o.id, 'released', o.quantity
        FROM orders AS o JOIN event_items AS i ON i.id = o.item_id
        WHERE o.id = ANY(CAST(:ids AS text[]))
        ORDER BY o.id
        ON CONFLICT (order_id, sku, reason) WHERE order_id IS NOT NULL DO NOTHING
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
# The tail both restocks share: on_hand raised by what was booked now, orders marked returned.
_RESTOCK_BOOKED = """
        ON CONFLICT (order_id, sku, reason) WHERE order_id IS NOT NULL DO NOTHING
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

_RECORD_RESTOCKED = text(
    """
    WITH booked AS (
        INSERT INTO inventory_ledger
            (sku, item_id, order_id, reason, on_hand_delta, item_stock_delta)
        SELECT i.sku, o.item_id, o.id, 'restocked', o.quantity, 0
        FROM orders AS o JOIN event_items AS i ON i.id = o.item_id
        WHERE o.id = ANY(CAST(:ids AS text[]))
        ORDER BY o.id"""
    + _RESTOCK_BOOKED
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
    SELECT o.id, o.user_id, o.item_id, o.quantity, now() < e.ends_at AS sale_open,
           o.promotion_id, o.promotion_day, o.status = 'cancelled' AS cancelled,
           o.goods_returned
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
    return _stock_returns(rows)


# A regular order's units go back on hand line by line: one `restocked` row per line
# (unique per order, SKU and reason), on_hand raised only for rows inserted now.
_RECORD_LINES_RESTOCKED = text(
    """
    WITH booked AS (
        INSERT INTO inventory_ledger (sku, order_id, reason, on_hand_delta, item_stock_delta)
        SELECT l.sku, l.order_id, 'restocked', l.quantity, 0
        FROM order_lines AS l
        WHERE l.order_id = ANY(CAST(:ids AS text[]))
        ORDER BY l.order_id, l.sku"""
    + _RESTOCK_BOOKED
)


# The same for a regular order's lines.
_LOCK_SKUS_OF_LINES = text(
    """
    SELECT s.sku FROM skus AS s
    WHERE s.sku IN (SELECT sku FROM order_lines WHERE order_id = ANY(CAST(:ids AS text[])))
    ORDER BY s.sku
    FOR UPDATE OF s
    """
)


async def record_lines_restocked(session: AsyncSession, order_ids: Sequence[str]) -> int:
    """Regular orders: their lines' units back on hand, booked, orders marked returned."""
    if not order_ids:
        return 0
    ids = sorted(order_ids)
    await session.execute(_LOCK_SKUS_OF_LINES, {"ids": ids})
    rows = await session.scalars(_RECORD_LINES_RESTOCKED, {"ids": ids})
    return len(rows.all())
