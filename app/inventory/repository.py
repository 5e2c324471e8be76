"""Every SQL statement of the inventory domain."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.inventory.models import MovementReason, Sku, StockMovement
from app.inventory.schemas import MAX_UNITS


async def get_sku(session: AsyncSession, sku: str) -> Sku | None:
    return await session.get(Sku, sku)


async def get_skus(session: AsyncSession, skus: Iterable[str]) -> dict[str, Sku]:
    wanted = sorted(set(skus))
    if not wanted:
        return {}
    rows = await session.scalars(select(Sku).where(Sku.sku.in_(wanted)))
    return {s.sku: s for s in rows}


# A checkout locks its SKU rows before it writes anything else: its order lines'
# foreign keys take a share lock on the same rows, and two checkouts that each held one
# and then asked for the row lock deadlocked (issue 17, case 11). In code order, so two
# checkouts sharing SKUs queue up instead of crossing. NO KEY UPDATE is what the UPDATE
# below takes anyway; unlike FOR UPDATE it lets rows that merely reference the SKU (the
# order writer's ledger rows, other orders' lines) be inserted meanwhile.
_LOCK_SKUS = text(
    "SELECT sku FROM skus WHERE sku = ANY(CAST(:skus AS text[])) ORDER BY sku FOR NO KEY UPDATE"
)
# One conditional UPDATE takes every line or none is short.
_TAKE_ON_HAND = text(
    """
    WITH wanted AS (
        SELECT * FROM unnest(CAST(:skus AS text[]), CAST(:units AS integer[])) AS t(sku, units)
    ), taken AS (
        UPDATE skus SET on_hand = skus.on_hand - wanted.units, updated_at = now()
        FROM wanted
        WHERE skus.sku = wanted.sku AND skus.on_hand >= wanted.units
        RETURNING skus.sku, wanted.units
    )
    INSERT INTO inventory_ledger (sku, order_id, reason, on_hand_delta, item_stock_delta)
    SELECT sku, :order_id, 'sold', -units, 0 FROM taken
    RETURNING sku
    """
)


async def lock_skus(session: AsyncSession, skus: Iterable[str]) -> None:
    """Lock these SKUs' rows until the transaction ends, in code order."""
    await session.execute(_LOCK_SKUS, {"skus": sorted(set(skus))})


async def take_on_hand(session: AsyncSession, *, order_id: str, units: dict[str, int]) -> set[str]:
    """Take each SKU's units off its on-hand stock for a regular order, with a `sold`
    ledger row each; returns the SKUs taken. A SKU short of stock is left untouched (the
    caller refuses the order and rolls back). The caller holds the rows (lock_skus)."""
    skus = sorted(units)
    rows = await session.scalars(
        _TAKE_ON_HAND,
        {"skus": skus, "units": [units[s] for s in skus], "order_id": order_id},
    )
    return set(rows.all())


async def list_skus(session: AsyncSession, *, limit: int, offset: int) -> Sequence[Sku]:
    rows = await session.scalars(select(Sku).order_by(Sku.sku).limit(limit).offset(offset))
    return rows.all()


async def insert_sku_if_absent(
    session: AsyncSession,
    *,
    sku: str,
    name: str,
    on_hand: int,
    price: Decimal | None = None,
    category: str | None = None,
) -> bool:
    """Create the SKU; False if it already existed (left unchanged)."""
    created = await session.scalar(
        pg_insert(Sku)
        .values(sku=sku, name=name, on_hand=on_hand, price=price, category=category)
        .on_conflict_do_nothing(index_elements=[Sku.sku])
        .returning(Sku.sku)
    )
    return created is not None


async def set_terms(session: AsyncSession, *, sku: str, values: dict[str, object]) -> bool:
    """Set price and/or category; False if there is no such SKU."""
    updated = await session.scalar(
        update(Sku).where(Sku.sku == sku).values(**values).returning(Sku.sku)
    )
    return updated is not None


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
