"""Running a live sale: operators change an item's stock, limit, price or low-stock
threshold, an event's end, or pause and resume it, while the crowd buys. Never commits.

A change is in force when the operator sees 200, or answers 503 `recovering` and changes
nothing. Each change is written to Postgres (the item or event row locked, the allocation
booked in the inventory ledger, the operator's action in the audit log) in the caller's
transaction, under a new terms version drawn from a sequence (never reused); then, still
before the commit, apply_terms() puts the item's whole terms at that version in force in
Redis with one adjust_sale.lua call per item, so no purchase sees half a change. Redis
unable to take it within half the socket timeout (by its own clock: a call it runs only
after a stall changes nothing) answers 503 and the transaction rolls back. Stock added is
given to the sale after the commit (apply_to_sale), never before: units must not sell
from an allocation that did not commit.

What can still leave Redis and Postgres apart (a commit that fails after Redis took the
change, a reply lost on its way back, a Redis restored from an older snapshot, stock
whose application after the commit failed) is undone by reapply(), which the worker runs
for every live item whose terms version or allocation in Redis is not Postgres's
(app/flows/sale_terms.py).
"""

import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from redis.exceptions import RedisClusterException, RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit_log import service as audit_log
from app.auth import User
from app.config import Settings
from app.container import Container
from app.db import after_commit
from app.errors import InvalidState, NotFound, Recovering, ValidationFailed
from app.events import repository
from app.events.access import ACCESS
from app.events.errors import EventNotFound, ItemNotFound
from app.events.models import Event, EventItem
from app.events.schemas import EventUpdate, ItemRead, ItemState, ItemUpdate, order_amount_problem
from app.inventory import service as inventory
from app.inventory.schemas import MAX_UNITS
from app.moments import ship_by
from app.store.adjust_sale import (
    AdjustOutcome,
    AppliedTerms,
    SaleAdjustment,
    adjust_sale,
    applied_terms,
)
from app.store.warmup import SaleTerms

logger = logging.getLogger(__name__)


Locked = TypeVar("Locked", Event, EventItem)


async def _lock_open(lock: Awaitable[Locked | None], *, missing: NotFound, now: datetime) -> Locked:
    """The event or item `lock` takes (the row lock: changes take turns), for a change:
    `missing` (404) if there is none, 409 once its sale has ended (an ended sale is not
    changed: start a new one)."""
    row = await lock
    if row is None:
        raise missing
    event = row if isinstance(row, Event) else row.event
    if now >= event.ends_at:
        raise InvalidState(
            f"Event {event.id} ended at {event.ends_at.isoformat()}; an ended sale is not "
            "changed (start a new one)."
        )
    return row


def ship_by_of(settings: Settings, ends_at: datetime, days: int | None) -> datetime | None:
    """The ship-by of a sale ending at `ends_at` that promises `days` (None: no promise),
    with the business timezone and holidays configured now."""
    if days is None:
        return None
    return ship_by(
        ends_at, days, timezone=settings.business_timezone, holidays=settings.shipping_holidays
    )


def sale_terms(item: EventItem) -> SaleTerms:
    """The item's terms as Postgres holds them, for Redis: held while its campaign is not
    approved, with the campaign's rules version in force, gated when its event is entered
    through a queue or a draw."""
    campaign = item.event.campaign
    return SaleTerms(
        item_id=item.id,
        event_id=item.event_id,
        starts_at=item.event.starts_at,
        ends_at=item.event.ends_at,
        member_early_access_seconds=item.event.member_early_access_seconds,
        per_user_limit=item.per_user_limit,
        paused=item.event.paused,
        unit_price=item.seckill_price,
        allocated=item.stock,
        version=item.terms_version,
        held=campaign is not None and not campaign.approved,
        rules_version=campaign.rules_version if campaign is not None else None,
        gated=ACCESS.validate_python(item.event.access).mode != "open",
        member_price=item.member_price,
        member_reserved=item.member_reserved,
        member_reserved_until=item.member_reserved_until,
    )


def _adjustment(item: EventItem, *, allocated_before: int) -> SaleAdjustment:
    return SaleAdjustment(
        item_id=item.id,
        allocated_before=allocated_before,
        allocated_after=item.stock,
        terms=sale_terms(item),
    )


def _not_applied(services: Container, items: Sequence[int], why: str) -> Recovering:
    return Recovering(
        f"The live sale could not take the change now ({why}); nothing was changed "
        f"(items {', '.join(map(str, items))}). Try again after Retry-After.",
        retry_after_seconds=services.watch.redis.retry_after_seconds,
    )


async def apply_terms(
    *,
    session: AsyncSession,
    services: Container,
    items: Sequence[EventItem],
    allocated: Mapping[int, int] | None = None,
    undo: Mapping[int, SaleTerms] | None = None,
) -> None:
    """Before the commit: put the items' terms, as changed in this transaction (each at
    its new version), in force in Redis. Raises Recovering (503, the transaction rolls
    back) if Redis cannot take them now; `allocated` is each item's allocation before
    the change (default: its stock), which this leaves as it is.

    Redis is given half the socket timeout, on its own clock, to apply each: a call it
    runs later (it was stalled, the caller has given up) changes nothing. If Redis fails
    on one item of several, the items the change reached get their terms from `undo`
    back (Postgres's before the change) at a newer version; should that fail too, the
    worker re-applies Postgres's terms (reapply(), within `worker_terms_check_seconds`)."""
    within = services.settings.redis_socket_timeout_seconds / 2
    reached: list[EventItem] = []
    for item in items:
        before = item.stock if allocated is None else allocated[item.id]
        change = SaleAdjustment(
            item_id=item.id, allocated_before=before, allocated_after=before, terms=sale_terms(item)
        )
        failure: str | None = None
        try:
            adjusted = await adjust_sale(
                redis=services.redis,
                scripts=services.scripts,
                prefix=services.settings.redis_key_prefix,
                change=change,
                within_seconds=within,
            )
            if adjusted.outcome is AdjustOutcome.TOO_LATE:
                failure = "Redis too slow"
        except (RedisError, RedisClusterException) as exc:
            logger.warning("mid-sale change of item %d: Redis failed (%s)", item.id, exc)
            failure = "Redis failed"
        if failure is not None:
            ids = [i.id for i in items]
            logger.warning("mid-sale change of items %s refused: %s", ids, failure)
            if undo is not None:
                await _undo(session=session, services=services, items=reached, undo=undo)
            raise _not_applied(services, ids, failure)
        # NO_SUCH_ITEM: the sale is not in Redis (nothing sells from it); it is loaded from
        # Postgres, this change included, by the warm-up or the worker's hot-store check.
        reached.append(item)


async def _undo(
    *,
    session: AsyncSession,
    services: Container,
    items: Sequence[EventItem],
    undo: Mapping[int, SaleTerms],
) -> None:
    """Best effort: the terms the items had before a change that is being refused, at a
    version newer than the change's (the rows are still locked: no other change is under
    way). What fails here the worker's check puts back."""
    if not items:
        return
    version = await repository.next_terms_version(session)
    for item in items:
        terms = replace(undo[item.id], version=version)
        change = SaleAdjustment(
            item_id=item.id,
            allocated_before=terms.allocated,
            allocated_after=terms.allocated,
            terms=terms,
        )
        try:
            await adjust_sale(
                redis=services.redis,
                scripts=services.scripts,
                prefix=services.settings.redis_key_prefix,
                change=change,
                within_seconds=services.settings.redis_socket_timeout_seconds / 2,
            )
        except (RedisError, RedisClusterException):
            logger.warning("item %d keeps a refused change until the worker's check", item.id)


async def update_item(
    *,
    session: AsyncSession,
    services: Container,
    actor: User,
    item_id: int,
    data: ItemUpdate,
    now: datetime,
) -> SaleAdjustment:
    """Change one item in Postgres, book it in the ledger and the audit log, and put it
    in force in the live sale before the commit (stock added: right after it). Refused
    like creation: a price above the list price, or price x limit past what an order row
    can hold. Returns the change."""
    item = await _lock_open(
        repository.lock_item(session, item_id), missing=ItemNotFound(f"No item {item_id}."), now=now
    )
    # A field given the value it has changes nothing: not applied, not logged.
    changes = {
        name: value
        for name, value in data.model_dump(exclude_unset=True).items()
        if name == "add_stock" or value != getattr(item, name)
    }
    if data.seckill_price is not None and data.seckill_price > item.list_price:
        raise ValidationFailed(
            f"seckill_price {data.seckill_price} is above the list price {item.list_price}.",
            field="seckill_price",
        )
    price = data.seckill_price if data.seckill_price is not None else item.seckill_price
    limit = data.per_user_limit if data.per_user_limit is not None else item.per_user_limit
    if (problem := order_amount_problem(price, limit)) is not None:
        raise ValidationFailed(
            f"Item {item_id} at seckill_price {price} and per_user_limit {limit}: {problem}.",
            field="seckill_price" if data.seckill_price is not None else "per_user_limit",
            message=problem,
        )
    if not changes:
        return _adjustment(item, allocated_before=item.stock)
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
    if data.per_user_limit is not None and "per_user_limit" in changes:
        item.per_user_limit = data.per_user_limit
        item.peak_per_user_limit = max(item.peak_per_user_limit, data.per_user_limit)
    if data.seckill_price is not None and "seckill_price" in changes:
        item.seckill_price = data.seckill_price
    if "low_stock_threshold" in changes:
        item.low_stock_threshold = data.low_stock_threshold
    # Only the low-stock threshold lives in Postgres alone; anything else changes the sale,
    # and Redis must take it now or the change is refused (stock too: it is added after
    # the commit, but only once Redis has just shown it can take it).
    live = any(name in changes for name in ("add_stock", "per_user_limit", "seckill_price"))
    if live:
        item.terms_version = await repository.next_terms_version(session)
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
    if live:
        await apply_terms(
            session=session, services=services, items=[item], allocated={item.id: allocated_before}
        )
    change = _adjustment(item, allocated_before=allocated_before)
    if data.add_stock is not None:
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
    event = await _lock_open(
        repository.lock_event(session, event_id),
        missing=EventNotFound(f"No event {event_id}."),
        now=now,
    )
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
    if data.ends_at == event.ends_at:  # changes nothing: not applied, not logged
        return [_adjustment(item, allocated_before=item.stock) for item in event.items]
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
    event = await _lock_open(
        repository.lock_event(session, event_id),
        missing=EventNotFound(f"No event {event_id}."),
        now=now,
    )
    undo = {item.id: sale_terms(item) for item in event.items}
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
        undo=undo,
    )


async def _move_end(
    *,
    session: AsyncSession,
    services: Container,
    actor: User,
    event: Event,
    ends_at: datetime,
    action: str,
    undo: Mapping[int, SaleTerms] | None = None,
) -> list[SaleAdjustment]:
    """Move the end of a locked event; `undo`: its items' terms before this change, if
    the caller changed them already."""
    undo = undo or {item.id: sale_terms(item) for item in event.items}
    before = event.ends_at
    event.ends_at = ends_at
    # The promise is working days after the end: it moves with the end.
    event.ship_by = ship_by_of(services.settings, ends_at, event.ship_within_days)
    version = await repository.next_terms_version(session)
    for item in event.items:
        item.terms_version = version
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
    await apply_terms(session=session, services=services, items=event.items, undo=undo)
    return [_adjustment(item, allocated_before=item.stock) for item in event.items]


async def put_campaign_in_force(
    *,
    session: AsyncSession,
    services: Container,
    campaign_id: int,
    held_before: bool,
    rules_version_before: int,
    now: datetime,
) -> list[int]:
    """Before the commit: put the campaign's approval and rules version, as changed in
    this transaction, in force on every item of its events not ended yet (each event
    locked, at a new terms version; 503 `recovering` and nothing changes if Redis cannot
    take it: the items it reached get the terms `held_before` and `rules_version_before`
    back). Returns the items changed."""
    changed: list[EventItem] = []
    undo: dict[int, SaleTerms] = {}
    version = await repository.next_terms_version(session)
    for event_id in await repository.campaign_event_ids(session, campaign_id, now=now):
        event = await repository.lock_event(session, event_id)
        if event is None:
            continue
        for item in event.items:
            undo[item.id] = replace(
                sale_terms(item), held=held_before, rules_version=rules_version_before
            )
            item.terms_version = version
            changed.append(item)
    await session.flush()
    await apply_terms(session=session, services=services, items=changed, undo=undo)
    return [item.id for item in changed]


async def apply_to_sale(*, services: Container, changes: Sequence[SaleAdjustment]) -> bool:
    """After the commit (an after-commit callback): give the items' sales the stock
    added. If Redis fails now, the allocation stands in Postgres and the worker adds the
    units (reapply()); returns False then."""
    try:
        for change in changes:
            await adjust_sale(
                redis=services.redis,
                scripts=services.scripts,
                prefix=services.settings.redis_key_prefix,
                change=change,
            )
            # This process knows at once; the others by the stock-back message.
            services.sold_out.clear(change.item_id)
    except (RedisError, RedisClusterException):
        logger.warning(
            "stock added to items %s saved but not given to the sale yet; the worker adds it",
            [c.item_id for c in changes],
            exc_info=True,
        )
        return False
    return True


def in_step(item: EventItem, applied: AppliedTerms) -> bool:
    """Redis holds the item's terms at Postgres's version, and all its allocated stock."""
    return applied.version == item.terms_version and (
        applied.allocated is None or applied.allocated >= item.stock
    )


async def reapply(*, session: AsyncSession, services: Container, item_id: int) -> bool:
    """Put Postgres's terms and allocation of the item in force in Redis if Redis holds
    other terms (a version Postgres does not have: a change whose commit failed, or an
    older one: a change Redis lost) or less stock than allocated. Under the item's lock,
    so no change is under way meanwhile (an item a change holds is skipped: that change
    applies itself), and at a new version, newer than whatever Redis holds, so a stale
    call can never undo it. Returns True if it re-applied something."""
    item = await repository.lock_item_if_free(session, item_id)
    if item is None:
        return False
    prefix = services.settings.redis_key_prefix
    applied = (await applied_terms(redis=services.redis, prefix=prefix, item_ids=[item.id]))[
        item.id
    ]
    if applied is None or in_step(item, applied):
        return False  # in step, or not in Redis at all (the hot-store check loads it)
    redis_allocated = applied.allocated if applied.allocated is not None else item.stock
    item.terms_version = await repository.next_terms_version(session)
    await session.flush()
    # The terms first, with a deadline (a late call must not change them); then the
    # stock, which only ever grows to the committed allocation.
    await apply_terms(
        session=session, services=services, items=[item], allocated={item.id: redis_allocated}
    )
    await adjust_sale(
        redis=services.redis,
        scripts=services.scripts,
        prefix=prefix,
        change=_adjustment(item, allocated_before=redis_allocated),
    )
    logger.warning(
        "item %d: Redis held terms version %d and allocation %d, Postgres other terms or "
        "%d units; Postgres's re-applied (version %d)",
        item.id,
        applied.version,
        redis_allocated,
        item.stock,
        item.terms_version,
    )
    return True
