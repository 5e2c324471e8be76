"""Inventory rules: SKUs, on-hand stock, allocation to sales. Never commits."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import ValidationFailed
from app.inventory import repository
from app.inventory.errors import InsufficientStock, SkuExists, SkuNotFound
from app.inventory.models import MovementReason, Sku, StockMovement
from app.inventory.schemas import MAX_UNITS, SkuCreate, SkuUpdate, StockAdjustmentCreate


async def create_sku(*, session: AsyncSession, data: SkuCreate) -> Sku:
    if not await repository.insert_sku_if_absent(
        session,
        sku=data.sku,
        name=data.name,
        on_hand=data.on_hand,
        price=data.price,
        category=data.category,
    ):
        raise SkuExists(f"SKU {data.sku!r} already exists; adjust its stock instead.")
    if data.on_hand:
        await repository.record_movement(
            session, sku=data.sku, reason=MovementReason.RECEIVED, on_hand_delta=data.on_hand
        )
    return await get_sku(session=session, sku=data.sku)


async def get_sku(*, session: AsyncSession, sku: str) -> Sku:
    found = await repository.get_sku(session, sku)
    if found is None:
        raise SkuNotFound(f"No SKU {sku!r}.")
    return found


async def list_skus(*, session: AsyncSession, limit: int, offset: int) -> Sequence[Sku]:
    return await repository.list_skus(session, limit=limit, offset=offset)


async def update_sku(*, session: AsyncSession, sku: str, data: SkuUpdate) -> Sku:
    values = data.model_dump(exclude_unset=True)
    if values.get("price", 0) is None:
        raise ValidationFailed("price cannot be removed, only changed.", field="price")
    if values and not await repository.set_terms(session, sku=sku, values=values):
        raise SkuNotFound(f"No SKU {sku!r}.")
    found = await get_sku(session=session, sku=sku)
    await session.refresh(found)
    return found


async def adjust_stock(*, session: AsyncSession, sku: str, data: StockAdjustmentCreate) -> Sku:
    if data.delta == 0:
        return await get_sku(session=session, sku=sku)
    level = await repository.change_on_hand(session, sku=sku, delta=data.delta)
    if level is None:
        current = await get_sku(session=session, sku=sku)
        if data.delta > 0:
            raise ValidationFailed(
                f"SKU {sku!r} has {current.on_hand} on hand; adding {data.delta} would pass "
                f"the ceiling of {MAX_UNITS} units.",
                field="delta",
            )
        raise InsufficientStock(
            f"SKU {sku!r} has {current.on_hand} on hand; cannot remove {-data.delta}."
        )
    reason = MovementReason.RECEIVED if data.delta > 0 else MovementReason.ADJUSTED
    await repository.record_movement(
        session, sku=sku, reason=reason, on_hand_delta=data.delta, note=data.note
    )
    found = await repository.get_sku(session, sku)
    assert found is not None
    await session.refresh(found)
    return found


async def receive_if_unknown(*, session: AsyncSession, sku: str, name: str, units: int) -> None:
    """A sale naming an unknown SKU brings exactly its allocation in as on-hand stock."""
    if await repository.insert_sku_if_absent(session, sku=sku, name=name, on_hand=units):
        await repository.record_movement(
            session, sku=sku, reason=MovementReason.RECEIVED, on_hand_delta=units
        )


async def allocate_to_item(*, session: AsyncSession, sku: str, item_id: int, units: int) -> None:
    """Take `units` of the SKU's on-hand stock for a sale item, or refuse if short."""
    if await repository.change_on_hand(session, sku=sku, delta=-units) is None:
        current = await get_sku(session=session, sku=sku)
        raise InsufficientStock(
            f"SKU {sku!r} has {current.on_hand} available; the sale asks for {units}.",
            extra={"sku": sku, "available": current.on_hand, "requested": units},
        )
    await repository.record_movement(
        session,
        sku=sku,
        reason=MovementReason.ALLOCATED,
        on_hand_delta=-units,
        item_stock_delta=units,
        item_id=item_id,
    )


async def list_movements(
    *, session: AsyncSession, sku: str, limit: int, offset: int
) -> Sequence[StockMovement]:
    await get_sku(session=session, sku=sku)
    return await repository.list_movements(session, sku=sku, limit=limit, offset=offset)


async def skus_by_code(*, session: AsyncSession, skus: Sequence[str]) -> dict[str, Sku]:
    """The SKUs that exist among these codes."""
    return await repository.get_skus(session, skus)


@dataclass(frozen=True, slots=True)
class HeldSkus:
    """SKU rows this transaction has locked (hold_for_order); only these can be taken."""

    skus: frozenset[str]


async def hold_for_order(*, session: AsyncSession, skus: Iterable[str]) -> HeldSkus:
    """Lock a regular order's SKU rows, in code order, before the order writes anything
    that references them (its lines); concurrent checkouts of the same SKUs then wait
    for each other instead of deadlocking."""
    held = frozenset(skus)
    await repository.lock_skus(session, held)
    return HeldSkus(skus=held)


async def take_for_order(
    *, session: AsyncSession, held: HeldSkus, order_id: str, units: dict[str, int]
) -> None:
    """Take a regular order's units off on-hand stock, all or nothing (never below zero):
    refuses with 409 insufficient_stock naming the SKUs short, and the caller's
    transaction is rolled back."""
    assert held.skus >= set(units), "take_for_order needs the SKUs held (hold_for_order)"
    taken = await repository.take_on_hand(session, order_id=order_id, units=units)
    short = sorted(set(units) - taken)
    if short:
        levels = await repository.get_skus(session, short)
        available = {s: (levels[s].on_hand if s in levels else 0) for s in short}
        raise InsufficientStock(
            "Not enough on hand: "
            + ", ".join(f"{s} has {available[s]}, the order asks for {units[s]}" for s in short)
            + ".",
            extra={"short": [{"sku": s, "available": available[s], "requested": units[s]}
                             for s in short]},
        )  # fmt: skip
