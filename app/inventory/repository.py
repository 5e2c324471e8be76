"""Every SQL statement of the inventory domain."""

from collections.abc import Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.inventory.models import MovementReason, Sku, StockMovement


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


async def change_on_hand(session: AsyncSession, *, sku: str, delta: int) -> int | None:
    """Add `delta` to on-hand stock unless that would go below zero; the new level or None.

    One conditional UPDATE, so concurrent allocations can never take more than is on hand.
    """
    return await session.scalar(
        update(Sku)
        .where(Sku.sku == sku, Sku.on_hand + delta >= 0)
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
