"""Running a live sale: operators change an item's stock, limit, price or low-stock
threshold, or an event's end, while the crowd buys. Never commits.

Each change is written to Postgres (the item or event row locked, the allocation booked
in the inventory ledger, the operator's action in the audit log) in the caller's
transaction; once that commits, apply_to_sale() (an after-commit callback) applies it to
Redis with one adjust_sale.lua call per item, so no purchase sees half a change. The
script sets stock by allocation and terms by version, so re-applying a change, or
applying two in the wrong order, leaves Redis as Postgres says.
"""

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit_log import service as audit_log
from app.auth import User
from app.container import Container
from app.db import after_commit
from app.errors import InvalidState, ValidationFailed
from app.events import repository
from app.events.errors import EventNotFound, ItemNotFound
from app.events.models import Event, EventItem
from app.events.schemas import EventUpdate, ItemRead, ItemState, ItemUpdate
from app.inventory import service as inventory
from app.inventory.schemas import MAX_UNITS
from app.store.adjust_sale import SaleAdjustment, adjust_sale

logger = logging.getLogger(__name__)


def _ended(event: Event, now: datetime) -> InvalidState | None:
    if now >= event.ends_at:
        return InvalidState(
            f"Event {event.id} ended at {event.ends_at.isoformat()}; an ended sale is not "
            "changed (start a new one)."
        )
    return None


def _adjustment(item: EventItem, *, allocated_before: int) -> SaleAdjustment:
    return SaleAdjustment(
        item_id=item.id,
        allocated_before=allocated_before,
        allocated_after=item.stock,
        terms_version=item.terms_version,
        per_user_limit=item.per_user_limit,
        unit_price=item.seckill_price,
        starts_at=item.event.starts_at,
        ends_at=item.event.ends_at,
    )


async def update_item(
    *,
    session: AsyncSession,
    services: Container,
    actor: User,
    item_id: int,
    data: ItemUpdate,
    now: datetime,
) -> SaleAdjustment:
    """Change one item in Postgres, book it in the ledger and the audit log; once
    committed, the live sale gets the change. Returns the change."""
    item = await repository.lock_item(session, item_id)
    if item is None:
        raise ItemNotFound(f"No item {item_id}.")
    if (ended := _ended(item.event, now)) is not None:
        raise ended
    changes = data.model_dump(exclude_unset=True)
    if data.seckill_price is not None and data.seckill_price > item.list_price:
        raise ValidationFailed(
            f"seckill_price {data.seckill_price} is above the list price {item.list_price}.",
            field="seckill_price",
        )
    before: dict[str, Any] = {
        "stock": item.stock,
        "per_user_limit": item.per_user_limit,
        "seckill_price": item.seckill_price,
        "low_stock_threshold": item.low_stock_threshold,
    }
    allocated_before = item.stock
    if data.add_stock is not None:
        if item.stock + data.add_stock > MAX_UNITS:
            raise ValidationFailed(
                f"Item {item_id} has {item.stock} allocated; adding {data.add_stock} would "
                f"pass the ceiling of {MAX_UNITS} units.",
                field="add_stock",
            )
        await inventory.allocate_to_item(
            session=session, sku=item.sku, item_id=item.id, units=data.add_stock
        )
        item.stock += data.add_stock
    if data.per_user_limit is not None:
        item.per_user_limit = data.per_user_limit
        item.peak_per_user_limit = max(item.peak_per_user_limit, data.per_user_limit)
    if data.seckill_price is not None:
        item.seckill_price = data.seckill_price
    if "low_stock_threshold" in changes:
        item.low_stock_threshold = data.low_stock_threshold
    item.terms_version += 1
    await session.flush()
    after = {key: getattr(item, key) for key in before if key != "stock"}
    after["stock"] = item.stock
    await audit_log.record(
        session=session,
        actor=actor,
        action="item.update",
        target=f"item:{item.id}",
        event_id=item.event_id,
        before={k: v for k, v in before.items() if k in changes or _stock(k, changes)},
        after={
            **{k: v for k, v in after.items() if k in changes or _stock(k, changes)},
            **({"add_stock": data.add_stock} if data.add_stock is not None else {}),
        },
    )
    change = _adjustment(item, allocated_before=allocated_before)
    after_commit(session, partial(apply_to_sale, services=services, changes=[change]))
    return change


def as_applied(item: ItemRead, change: SaleAdjustment) -> ItemRead:
    """The item as it reads once `change` is applied to the live sale (the answer is
    built before the commit, and so before Redis has the added stock)."""
    added = change.allocated_after - change.allocated_before
    if added <= 0 or item.state in (ItemState.ENDED, ItemState.UPCOMING):
        return item
    remaining = item.remaining + added
    state = ItemState.LIVE if item.state is ItemState.SOLD_OUT else item.state
    return item.model_copy(update={"remaining": remaining, "state": state})


def _stock(key: str, changes: dict[str, Any]) -> bool:
    return key == "stock" and "add_stock" in changes


async def update_event(
    *,
    session: AsyncSession,
    services: Container,
    actor: User,
    event_id: int,
    data: EventUpdate,
    now: datetime,
) -> list[SaleAdjustment]:
    """Move an event's end (extend or shorten, still in the future)."""
    event = await repository.lock_event(session, event_id)
    if event is None:
        raise EventNotFound(f"No event {event_id}.")
    if (ended := _ended(event, now)) is not None:
        raise ended
    if data.ends_at <= event.starts_at:
        raise ValidationFailed(
            f"ends_at must be after the start ({event.starts_at.isoformat()}).", field="ends_at"
        )
    if data.ends_at <= now:
        raise ValidationFailed(
            "ends_at is not in the future; to stop the sale now use "
            f"POST /api/v1/admin/events/{event_id}/end.",
            field="ends_at",
        )
    return await _move_end(
        session=session,
        services=services,
        actor=actor,
        event=event,
        ends_at=data.ends_at,
        action="event.update",
    )


async def end_event(
    *, session: AsyncSession, services: Container, actor: User, event_id: int, now: datetime
) -> list[SaleAdjustment]:
    """End a sale now (an upcoming one is closed before it opens)."""
    event = await repository.lock_event(session, event_id)
    if event is None:
        raise EventNotFound(f"No event {event_id}.")
    if (ended := _ended(event, now)) is not None:
        raise ended
    if event.starts_at >= now:
        # The window must stay ordered: an upcoming sale is closed before it opens.
        event.starts_at = now - timedelta(milliseconds=1)
    return await _move_end(
        session=session,
        services=services,
        actor=actor,
        event=event,
        ends_at=now,
        action="event.end",
    )


async def _move_end(
    *,
    session: AsyncSession,
    services: Container,
    actor: User,
    event: Event,
    ends_at: datetime,
    action: str,
) -> list[SaleAdjustment]:
    before = event.ends_at
    event.ends_at = ends_at
    for item in event.items:
        item.terms_version += 1
    await session.flush()
    await audit_log.record(
        session=session,
        actor=actor,
        action=action,
        target=f"event:{event.id}",
        event_id=event.id,
        before={"ends_at": before},
        after={"ends_at": ends_at},
    )
    changes = [_adjustment(item, allocated_before=item.stock) for item in event.items]
    after_commit(session, partial(apply_to_sale, services=services, changes=changes))
    return changes


async def apply_to_sale(*, services: Container, changes: Sequence[SaleAdjustment]) -> bool:
    """After the commit (an after-commit callback): apply the changes to the items'
    sales in Redis. If Redis fails now, the change stands in Postgres and the next
    warm-up (any API start, or a pause or resume of the event) brings Redis in line;
    returns False then."""
    try:
        for change in changes:
            await adjust_sale(
                redis=services.redis,
                scripts=services.scripts,
                prefix=services.settings.redis_key_prefix,
                change=change,
            )
    except RedisError:
        logger.warning(
            "mid-sale change of items %s saved but not applied to Redis; the next warm-up "
            "applies it",
            [c.item_id for c in changes],
            exc_info=True,
        )
        return False
    return True
