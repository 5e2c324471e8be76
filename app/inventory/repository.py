"""Every SQL statement of the inventory domain."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.inventory.models import MovementReason, Sku, StockMovement
from app.inventory.schemas import MAX_UNITS
from app.orders.models import Order


async def get_sku(session: AsyncSession, sku: str) -> Sku | None:
    return await session.get(Sku, sku)


async def list_skus(session: AsyncSession, *, limit: int, offset: int) -> Sequence[Sku]:
    rows = await session.scalars(select(Sku).order_by(Sku.sku).limit(limit).offset(offset))
    return rows.all()


async def insert_sku_if_absent(session: AsyncSession, *, sku: str, name: str, on_hand: int) -> bool:
    """Create the SKU; False if it already existed (left unchanged)."""
    created = await session.scalar(
        pg_insert(Sku)
        .values(sku=sku, name=name, on_hand=on_hand)
        .on_conflict_do_nothing(index_elements=[Sku.sku])
        .returning(Sku.sku)
    )
    return created is not None


async def change_on_hand(
    session: AsyncSession, *, sku: str, delta: int, ceiling: int = MAX_UNITS
) -> int | None:
    """Add `delta` to on-hand stock unless that would leave 0..ceiling; the new level or None.

    One conditional UPDATE, so concurrent allocations can never take more than is on hand
    (and repeated deliveries never overflow the integer column).
    """
    return await session.scalar(
        update(Sku)
        .where(Sku.sku == sku, Sku.on_hand + delta >= 0, Sku.on_hand + delta <= ceiling)
        .values(on_hand=Sku.on_hand + delta)
        .returning(Sku.on_hand)
    )


async def record_movement(
    session: AsyncSession,
    *,
    sku: str,
    reason: MovementReason,
    on_hand_delta: int = 0,
    item_stock_delta: int = 0,
    item_id: int | None = None,
    order_id: str | None = None,
    note: str | None = None,
) -> None:
    await session.execute(
        insert(StockMovement).values(
            sku=sku,
            reason=reason.value,
            on_hand_delta=on_hand_delta,
            item_stock_delta=item_stock_delta,
            item_id=item_id,
            order_id=order_id,
            note=note,
        )
    )


async def list_movements(
    session: AsyncSession, *, sku: str, limit: int, offset: int
) -> Sequence[StockMovement]:
    rows = await session.scalars(
        select(StockMovement)
        .where(StockMovement.sku == sku)
        .order_by(StockMovement.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return rows.all()


# -- the books of a sale item, for the audit ------------------------------------------

# Movements that belong to one order: it sold, or its units came back.
ORDER_REASONS = (
    MovementReason.SOLD.value,
    MovementReason.RELEASED.value,
    MovementReason.RESTOCKED.value,
)


@dataclass(frozen=True, slots=True)
class ItemLedger:
    """An item's ledger summed up."""

    item_stock: int  # sum of item_stock_delta: the sale stock the ledger says is left
    allocated: int  # item_stock_delta of `allocated` rows
    restocked: int  # on_hand_delta of `restocked` rows: cancelled units sent back on hand


async def ledger_by_item(session: AsyncSession, item_ids: Iterable[int]) -> dict[int, ItemLedger]:
    ids = list(item_ids)
    if not ids:
        return {}
    delta = StockMovement.item_stock_delta
    rows = await session.execute(
        select(
            StockMovement.item_id,
            func.coalesce(func.sum(delta), 0),
            func.coalesce(
                func.sum(delta).filter(StockMovement.reason == MovementReason.ALLOCATED.value), 0
            ),
            func.coalesce(
                func.sum(StockMovement.on_hand_delta).filter(
                    StockMovement.reason == MovementReason.RESTOCKED.value
                ),
                0,
            ),
        )
        .where(StockMovement.item_id.in_(ids))
        .group_by(StockMovement.item_id)
    )
    found = {
        item_id: ItemLedger(item_stock=int(stock), allocated=int(allocated), restocked=int(back))
        for item_id, stock, allocated, back in rows
    }
    empty = ItemLedger(item_stock=0, allocated=0, restocked=0)
    return {item_id: found.get(item_id, empty) for item_id in ids}


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
