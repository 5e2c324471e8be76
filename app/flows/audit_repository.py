"""The audit's SQL: queries that join orders to the inventory ledger (they span two
domains, so they live with the flow that needs them)."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.inventory.models import MovementReason, StockMovement
from app.inventory.repository import ORDER_REASONS
from app.orders.models import Order


async def restocked_units_by_user(session: AsyncSession, item_id: int) -> dict[str, int]:
    """Units of each user's cancelled orders that went back on hand (not back on sale)."""
    rows = await session.execute(
        select(Order.user_id, func.sum(StockMovement.on_hand_delta))
        .join(Order, Order.id == StockMovement.order_id)
        .where(
            StockMovement.item_id == item_id,
            StockMovement.reason == MovementReason.RESTOCKED.value,
        )
        .group_by(Order.user_id)
    )
    return {user_id: int(units) for user_id, units in rows}


@dataclass(frozen=True, slots=True)
class OrderMovements:
    """One order next to the ledger rows written for it."""

    order_id: str
    item_id: int
    status: str
    quantity: int
    sold_rows: int
    sold_units: int
    returned_rows: int  # `released` or `restocked`
    returned_units: int
    misplaced_rows: int  # rows booked on another item than the order's


# A live order has one `sold` row for its quantity; a cancelled or refunded one also has
# exactly one `released` (back on sale) or `restocked` (back on hand) row for it once its
# units are back (`stock_returned_at`), and none before.
_UNBALANCED_ORDERS = text(
    """
    WITH books AS (
        SELECT o.id, o.item_id, o.status, o.quantity, o.stock_returned_at,
               count(l.id) FILTER (WHERE l.reason = 'sold') AS sold_rows,
               coalesce(-sum(l.item_stock_delta) FILTER (WHERE l.reason = 'sold'), 0)
                   AS sold_units,
               count(l.id) FILTER (WHERE l.reason IN ('released', 'restocked'))
                   AS returned_rows,
               coalesce(sum(l.item_stock_delta) FILTER (WHERE l.reason = 'released'), 0)
                 + coalesce(sum(l.on_hand_delta) FILTER (WHERE l.reason = 'restocked'), 0)
                   AS returned_units,
               count(l.id) FILTER (WHERE l.item_id IS DISTINCT FROM o.item_id)
                   AS misplaced_rows
        FROM orders AS o
        LEFT JOIN inventory_ledger AS l ON l.order_id = o.id
        WHERE o.item_id = ANY(CAST(:item_ids AS bigint[]))
        GROUP BY o.id
    )
    SELECT * FROM books
    WHERE sold_rows <> 1
       OR sold_units <> quantity
       OR returned_rows <> CASE WHEN stock_returned_at IS NULL THEN 0 ELSE 1 END
       OR (returned_rows = 1 AND returned_units <> quantity)
       OR misplaced_rows <> 0
    ORDER BY id
    LIMIT :limit
    """
)


async def unbalanced_orders(
    session: AsyncSession, item_ids: Iterable[int], *, limit: int
) -> list[OrderMovements]:
    """Orders of these items whose ledger rows do not match their status (at most `limit`)."""
    ids = list(item_ids)
    if not ids:
        return []
    rows = await session.execute(_UNBALANCED_ORDERS, {"item_ids": ids, "limit": limit})
    return [
        OrderMovements(
            order_id=row.id,
            item_id=row.item_id,
            status=row.status,
            quantity=row.quantity,
            sold_rows=row.sold_rows,
            sold_units=row.sold_units,
            returned_rows=row.returned_rows,
            returned_units=row.returned_units,
            misplaced_rows=row.misplaced_rows,
        )
        for row in rows
    ]


async def movements_without_order(
    session: AsyncSession, item_ids: Iterable[int], *, limit: int
) -> Sequence[StockMovement]:
    """Sale, release or restock rows of these items that name no stored order."""
    ids = list(item_ids)
    if not ids:
        return []
    rows = await session.scalars(
        select(StockMovement)
        .outerjoin(Order, Order.id == StockMovement.order_id)
        .where(
            StockMovement.item_id.in_(ids),
            StockMovement.reason.in_(ORDER_REASONS),
            or_(StockMovement.order_id.is_(None), Order.id.is_(None)),
        )
        .order_by(StockMovement.id)
        .limit(limit)
    )
    return rows.all()
