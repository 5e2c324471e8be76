"""Flash-sale events: creation with allocation, public reads with live stock, warm-up.
Never commits: the request's session owns the transaction (app/db.py); loading a sale
into Redis is registered to run after its commit."""

import logging
from collections.abc import Sequence
from datetime import datetime
from functools import partial

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit_log import service as audit_log
from app.auth import User
from app.campaigns import service as campaigns
from app.campaigns.models import CampaignStatus
from app.container import Container
from app.db import after_commit
from app.errors import InvalidState, ValidationFailed
from app.events import repository
from app.events.access import ACCESS, Access, AccessUpdate, OpenAccess, QueueAccess
from app.events.controls import apply_terms, ship_by_of
from app.events.controls import sale_terms as _terms
from app.events.errors import EventNotFound, ItemNotFound
from app.events.models import Event, EventItem
from app.events.schemas import EventCreate, EventRead, EventState, ItemRead, ItemState
from app.generations import repository as generations
from app.generations.service import remember_built
from app.inventory import repository as inventory_repository
from app.inventory import service as inventory
from app.moments import utc_now
from app.orders import repository as orders
from app.store.adjust_sale import SaleAdjustment, adjust_sale
from app.store.freezes import freeze
from app.store.idempotency import KeyedOrder, restore_records
from app.store.keys import ItemKeys
from app.store.queue import set_pow_bits as set_queue_pow_bits
from app.store.queue_keys import QueueKeys
from app.store.records import NewOrder
from app.store.sale_state import remaining_stock, stream_orders
from app.store.stored import forget_stored
from app.store.warmup import Build, Built, load_sale, refresh_terms

logger = logging.getLogger(__name__)


async def create_event(
    *, session: AsyncSession, services: Container, data: EventCreate, actor: User | None = None
) -> Event:
    """Create the event and allocate each item's stock from its SKU; once committed, the
    sale is loaded into Redis (or, if Redis fails then, by the next warm-up)."""
    if data.ends_at <= utc_now():
        # Its stock would be allocated to a sale that can never sell.
        raise ValidationFailed(
            "The sale window has already ended: ends_at must be in the future.",
            field="ends_at",
        )
    if data.campaign_id is not None:
        await campaigns.slot_of(
            session=session,
            campaign_id=data.campaign_id,
            starts_at=data.starts_at,
            ends_at=data.ends_at,
        )
    event = await repository.insert_event(
        session,
        name=data.name,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        member_early_access_seconds=data.member_early_access_seconds,
        campaign_id=data.campaign_id,
        access=data.access.model_dump(mode="json"),
        ship_within_days=data.ship_within_days,
        ship_by=ship_by_of(services.settings, data.ends_at, data.ship_within_days),
    )
    # Allocate in SKU order so two events sharing SKUs lock them in the same order.
    for spec in sorted(data.items, key=lambda i: i.sku):
        await inventory.receive_if_unknown(
            session=session, sku=spec.sku, name=spec.name, units=spec.stock
        )
        item = await repository.insert_item(
            session,
            event_id=event.id,
            sku=spec.sku,
            name=spec.name,
            list_price=spec.list_price,
            seckill_price=spec.seckill_price,
            stock=spec.stock,
            per_user_limit=spec.per_user_limit,
            member_price=spec.member_price,
            member_reserved=spec.member_reserved,
            # A reserve with no end is the members' for the whole sale.
            member_reserved_until=(
                (spec.member_reserved_until or data.ends_at) if spec.member_reserved else None
            ),
        )
        await inventory.allocate_to_item(
            session=session, sku=spec.sku, item_id=item.id, units=spec.stock
        )
    if actor is not None:
        await audit_log.record(
            session=session,
            actor=actor,
            action="event.create",
            target=f"event:{event.id}",
            event_id=event.id,
            after=data.model_dump(mode="json"),
        )
    created = await get_event_row(session=session, event_id=event.id)
    after_commit(
        session,
        partial(publish_sale_or_defer, session=session, services=services, items=created.items),
    )
    return created


async def get_event_row(*, session: AsyncSession, event_id: int) -> Event:
    event = await repository.get_event(session, event_id)
    if event is None:
        raise EventNotFound(f"No event {event_id}.")
    return event


SALE = "sale"  # the counter family of an item's sale (app/generations)


async def publish_sale(
    *, session: AsyncSession, services: Container, items: Sequence[EventItem]
) -> int:
    """Load (or refresh) the items' sale state in Redis from Postgres; returns how many
    items had their live counters built.

    A live sale keeps its counters: only its terms are refreshed, without reading its
    stream or its buyers (after a big sale, millions of each: every API process's start
    would read them all). Counters are built here only for a sale never built before:
    nothing can have sold on it. One that was built before and is missing was lost (Redis
    restarted empty, or from a snapshot older than the sale): it is frozen here, never
    rebuilt while it could sell, and the hot-store check (app/flows/freshness.py) rebuilds
    it with `rebuild_sale`."""
    prefix = services.settings.redis_key_prefix
    group = services.settings.worker_group
    missing = [
        item
        for item in items
        if not await refresh_terms(
            redis=services.redis,
            scripts=services.scripts,
            prefix=prefix,
            group=group,
            terms=_terms(item),
        )
    ]
    built_before = await generations.built_epochs(session, SALE, [i.id for i in missing])
    lost = [item.id for item in missing if item.id in built_before]
    if lost:
        logger.warning("items %s: sale built before and missing in Redis; frozen", lost)
        await freeze(services.redis, [ItemKeys(prefix, i).sale for i in lost])
    built: dict[int, int] = {}
    for item in missing:
        if item.id in built_before:
            continue
        # Never built: nothing sold, nothing in a stream; the buyers' counts are empty.
        outcome = await load_sale(
            redis=services.redis,
            scripts=services.scripts,
            prefix=prefix,
            group=group,
            terms=_terms(item),
            units_sold=0,
            bought_by_user={},
        )
        if outcome.written:
            built[item.id] = outcome.epoch
    await remember_built(services.sessionmaker, SALE, built)
    for item in items:
        # Stock an operator added whose application to Redis was interrupted comes in now
        # (a no-op when Redis already reflects the allocation).
        await adjust_sale(
            redis=services.redis,
            scripts=services.scripts,
            prefix=prefix,
            change=SaleAdjustment(
                item_id=item.id, allocated_before=item.stock, allocated_after=item.stock
            ),
        )
    return len(built)


async def rebuild_sale(*, services: Container, item: EventItem) -> Built:
    """Replace a frozen item's counters with what one consistent picture says was sold.

    Every accepted order is in the stream, in Postgres, or in both (the writer deletes an
    entry only after its commit), and the frozen item adds none. The stream is read
    first, then Postgres in one REPEATABLE READ snapshot taken after it: an order the
    writer commits before the snapshot is found stored, one it commits after is counted
    from the stream, never neither nor both. warmup.lua replaces stock, buyers and
    released in one step, and only while the item is still frozen."""
    prefix = services.settings.redis_key_prefix
    entries = await stream_orders(redis=services.redis, prefix=prefix, item_id=item.id)
    in_flight = [order for _entry_id, order in entries]
    async with services.sessionmaker() as session:
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        sold = await orders.units_sold_by_item(session, [item.id], with_owed_returns=True)
        bought = await orders.units_bought_by_user(session, item.id, with_owed_returns=True)
        stored = await orders.stored_order_ids(session, [o.id for o in in_flight])
        unstored = [o for o in in_flight if o.id not in stored]
        for order in unstored:
            bought[order.user_id] = bought.get(order.user_id, 0) + order.quantity
        keyed = await orders.keyed_orders_of_item(session, item.id)
        member_units = await orders.units_taken_by_members(session, item.id)
        min_epoch = (await generations.built_epochs(session, SALE, [item.id])).get(item.id, 0)
    await _restore_idempotency(services=services, item=item, keyed=keyed, unstored=unstored)
    outcome = await load_sale(
        redis=services.redis,
        scripts=services.scripts,
        prefix=prefix,
        group=services.settings.worker_group,
        terms=_terms(item),
        units_sold=sold[item.id] + sum(o.quantity for o in unstored),
        bought_by_user=bought,
        build=Build.REBUILD,
        min_epoch=min_epoch,
        member_units=member_units + sum(o.quantity for o in unstored if o.member),
    )
    if outcome.written:
        await remember_built(services.sessionmaker, SALE, {item.id: outcome.epoch})
        # Entries Postgres has and the stream still holds (a snapshot taken between the
        # writer's commit and its acknowledgement): done with, as the writer would be.
        done = [(entry_id, o.id) for entry_id, o in entries if o.id in stored]
        if done:
            keys = ItemKeys(prefix, item.id)
            await forget_stored(
                services.redis,
                services.scripts,
                stream=keys.orders,
                queued=keys.queued,
                failures=keys.failures,
                group=services.settings.worker_group,
                entry_ids=[entry_id for entry_id, _ in done],
                record_ids=[order_id for _, order_id in done],
            )
    return outcome


async def _restore_idempotency(
    *,
    services: Container,
    item: EventItem,
    keyed: Sequence[KeyedOrder],
    unstored: Sequence[NewOrder],
) -> None:
    """Before the counters are rebuilt (and selling resumes on them): the records of the
    item's orders, so that a retry with a known Idempotency-Key gets its first order
    (records Redis kept stay as they are)."""
    keys = ItemKeys(services.settings.redis_key_prefix, item.id)
    every = list(keyed) + [
        KeyedOrder(o.user_id, o.idempotency_key, o.id, o.quantity)
        for o in unstored
        if o.idempotency_key is not None
    ]
    # As purchase.lua keeps them: until the sale ends, plus the TTL.
    remaining = item.event.ends_at - utc_now()
    ttl_ms = (
        int(remaining.total_seconds() * 1000) + services.settings.idempotency_ttl_seconds * 1000
    )
    written = await restore_records(services.redis, keys, every, ttl_ms=ttl_ms)
    if written:
        logger.info("item %d: %d idempotency records restored", item.id, written)


async def publish_sale_or_defer(
    *, session: AsyncSession, services: Container, items: Sequence[EventItem]
) -> bool:
    """publish_sale() right after the event's commit. If Redis fails now, the event stands
    (answering 500 would invite a retry, and a second event) and the sale is loaded by the
    next warm-up: any API process's start, or a pause/resume of the event."""
    try:
        await publish_sale(session=session, services=services, items=items)
    except RedisError:
        logger.warning(
            "event items %s saved but not loaded into Redis; the next warm-up loads them",
            [i.id for i in items],
            exc_info=True,
        )
        return False
    return True


async def warm_up(*, session: AsyncSession, services: Container) -> int:
    """At start-up: make sure every live or upcoming item is in Redis."""
    items = await repository.items_not_ended(session, now=utc_now())
    return await publish_sale(session=session, services=services, items=items)


def event_state(event: Event, now: datetime) -> EventState:
    if now >= event.ends_at:
        return EventState.ENDED
    if now < event.starts_at:
        return EventState.UPCOMING
    return EventState.LIVE


def item_state(event: Event, remaining: int, now: datetime) -> ItemState:
    if now >= event.ends_at:
        return ItemState.ENDED
    if event.paused:
        return ItemState.PAUSED
    if now < event.starts_at:
        return ItemState.UPCOMING
    if remaining <= 0:
        return ItemState.SOLD_OUT
    return ItemState.LIVE


async def _remaining(
    *, session: AsyncSession, services: Container, items: Sequence[EventItem]
) -> dict[int, int]:
    try:
        live = await remaining_stock(
            redis=services.redis,
            prefix=services.settings.redis_key_prefix,
            item_ids=[i.id for i in items],
        )
    except RedisError:
        # Event pages keep answering while Redis is away, from the ledger.
        logger.warning("Redis unavailable; item stock read from the ledger", exc_info=True)
        live = {}
    missing = [i.id for i in items if live.get(i.id) is None]
    # Items not in Redis (an old sale, or Redis rebuilt): the inventory ledger's sale
    # stock is the truth (allocated, less sold, plus released; restocks left the sale).
    ledger = await inventory_repository.ledger_by_item(session, missing)
    result = {item_id: stock for item_id, stock in live.items() if stock is not None}
    for item_id in missing:
        result[item_id] = ledger[item_id].item_stock
    return result


async def remaining_from_ledger(
    *, session: AsyncSession, items: Sequence[EventItem]
) -> dict[int, int]:
    """Sale stock left per item as the inventory ledger has it (for items not in Redis)."""
    ledger = await inventory_repository.ledger_by_item(session, [i.id for i in items])
    return {item_id: books.item_stock for item_id, books in ledger.items()}


def _item_read(item: EventItem, event: Event, remaining: int, now: datetime) -> ItemRead:
    return ItemRead(
        id=item.id,
        event_id=item.event_id,
        sku=item.sku,
        name=item.name,
        list_price=item.list_price,
        seckill_price=item.seckill_price,
        stock=item.stock,
        per_user_limit=item.per_user_limit,
        low_stock_threshold=item.low_stock_threshold,
        member_price=item.member_price,
        member_reserved=item.member_reserved,
        member_reserved_until=item.member_reserved_until,
        remaining=max(remaining, 0),
        state=item_state(event, remaining, now),
        starts_at=event.starts_at,
        ends_at=event.ends_at,
    )


async def read_events(
    *, session: AsyncSession, services: Container, events: Sequence[Event]
) -> list[EventRead]:
    now = utc_now()
    all_items = [item for event in events for item in event.items]
    remaining = await _remaining(session=session, services=services, items=all_items)
    return [
        EventRead(
            id=event.id,
            name=event.name,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            member_early_access_seconds=event.member_early_access_seconds,
            paused=event.paused,
            campaign_id=event.campaign_id,
            access=access_of(event),
            state=event_state(event, now),
            ship_within_days=event.ship_within_days,
            ship_by=event.ship_by,
            items=[_item_read(i, event, remaining[i.id], now) for i in event.items],
        )
        for event in events
    ]


def access_of(event: Event) -> Access:
    """The event's access as its schema reads it."""
    return ACCESS.validate_python(event.access)


def shown_to_shoppers(event: Event) -> bool:
    """Not a slot of a campaign awaiting approval: shoppers see it (and it can sell)."""
    return campaign_shows(None if event.campaign is None else event.campaign.status)


def campaign_shows(status: str | None) -> bool:
    """An event of a campaign in this state (None: of none) is shown to shoppers."""
    return status is None or status == CampaignStatus.APPROVED


async def get_event(
    *, session: AsyncSession, services: Container, event_id: int, shopper: bool = False
) -> EventRead:
    """The event; for a `shopper`, 404 while its campaign is not approved."""
    event = await get_event_row(session=session, event_id=event_id)
    if shopper and not shown_to_shoppers(event):
        raise EventNotFound(f"No event {event_id}.")
    return (await read_events(session=session, services=services, events=[event]))[0]


async def list_events(
    *,
    session: AsyncSession,
    services: Container,
    state: EventState | None,
    limit: int,
    offset: int,
    paused: bool | None = None,
    shopper: bool = False,
) -> list[EventRead]:
    """Events by start; for a `shopper`, none of a campaign not approved."""
    events = await repository.list_events(
        session,
        state=state,
        now=utc_now(),
        limit=limit,
        offset=offset,
        paused=paused,
        shown_to_shoppers=shopper,
    )
    return await read_events(session=session, services=services, events=events)


async def get_item_row(*, session: AsyncSession, item_id: int) -> EventItem:
    item = await repository.get_item(session, item_id)
    if item is None:
        raise ItemNotFound(f"No item {item_id}.")
    return item


async def get_item(
    *, session: AsyncSession, services: Container, item_id: int, shopper: bool = False
) -> ItemRead:
    """The item; for a `shopper`, 404 while its campaign is not approved."""
    item = await get_item_row(session=session, item_id=item_id)
    if shopper and not shown_to_shoppers(item.event):
        raise ItemNotFound(f"No item {item_id}.")
    remaining = await _remaining(session=session, services=services, items=[item])
    return _item_read(item, item.event, remaining[item.id], utc_now())


async def set_paused(
    *, session: AsyncSession, services: Container, actor: User, event_id: int, paused: bool
) -> Event:
    """Pause or resume the event's sale, logged (a pause of a paused sale, a resume of a
    running one: 200, nothing applied or logged). Part of every item's versioned terms,
    in force in Redis before the commit (app/events/controls.py): 200 means purchases
    already answer `paused` (or sell again), 503 `recovering` that nothing changed."""
    event = await repository.lock_event(session, event_id)
    if event is None:
        raise EventNotFound(f"No event {event_id}.")
    if event.paused == paused:  # already so: nothing to apply, nothing to log
        return await get_event_row(session=session, event_id=event_id)
    was_paused = event.paused
    undo = {item.id: _terms(item) for item in event.items}
    event.paused = paused
    version = await repository.next_terms_version(session)
    for item in event.items:
        item.terms_version = version
    await session.flush()
    await audit_log.record(
        session=session,
        actor=actor,
        action="event.pause" if paused else "event.resume",
        target=f"event:{event_id}",
        event_id=event_id,
        before={"paused": was_paused},
        after={"paused": paused},
    )
    await apply_terms(session=session, services=services, items=event.items, undo=undo)
    # As any warm-up: a sale never loaded yet (its creation's load failed) is loaded now.
    after_commit(
        session,
        partial(publish_sale_or_defer, session=session, services=services, items=event.items),
    )
    return await get_event_row(session=session, event_id=event_id)


async def set_pow_bits(
    *,
    session: AsyncSession,
    services: Container,
    actor: User,
    event_id: int,
    data: AccessUpdate,
) -> Event:
    """Change a queue or draw event's proof-of-work difficulty, mid-sale too, logged (the
    same difficulty again: 200, nothing logged). Registrations read it from Postgres, a
    waiting room's joins from its queue in Redis, which takes it after the commit: in
    force before the answer. 409 `invalid_state` for an open event, which asks for no
    proof of work."""
    event = await repository.lock_event(session, event_id)
    if event is None:
        raise EventNotFound(f"No event {event_id}.")
    access = access_of(event)
    if isinstance(access, OpenAccess):
        raise InvalidState(
            f"Event {event_id} is open (first come, first served): only a queue or a draw "
            "asks for a proof of work."
        )
    if access.pow_bits == data.pow_bits:
        return event
    # A new dict: the JSONB column is saved when the attribute is assigned.
    event.access = access.model_copy(update={"pow_bits": data.pow_bits}).model_dump(mode="json")
    await session.flush()
    await audit_log.record(
        session=session,
        actor=actor,
        action="event.access",
        target=f"event:{event_id}",
        event_id=event_id,
        before={"pow_bits": access.pow_bits},
        after={"pow_bits": data.pow_bits},
    )
    if isinstance(access, QueueAccess):
        keys = QueueKeys(services.settings.redis_key_prefix, event_id)
        after_commit(session, partial(set_queue_pow_bits, services.redis, keys, data.pow_bits))
    return event
