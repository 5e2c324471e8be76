"""Live stats of a sale, read at most a second behind.

Counting happens in purchase.lua at no extra round trip (see its KEYS[6..8]): each item
keeps a HyperLogLog of the users who tried, one of the users accepted, and counters of
attempts and accepted orders/units. Here they are read for all items in one pipeline
(each item's keys in its own slot), the HyperLogLogs are copied into the event's slot to
count the union (a user trying three items is one participant), and the paid side comes
from Postgres. Live readers share one computation per event and interval (feed.py).
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from redis.client import NEVER_DECODE
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.stats import AccessStats, access_stats
from app.container import Container
from app.events import service as events
from app.events.models import Event, EventItem
from app.live import repository
from app.live.schemas import (
    EventStats,
    ItemStats,
    LiveBoard,
    LiveItem,
    LotteryPrizeStats,
    LotteryStats,
)
from app.lottery import repository as lottery_repository
from app.lottery.errors import LotteryNotFound
from app.members.stats import MembersReport, members_report
from app.moments import from_ms, utc_now
from app.orders import shipping
from app.redis import RedisClient
from app.reminders import service as reminders
from app.reminders.schemas import ReminderCounts
from app.returns.stats import AfterSales, after_sales
from app.store.keys import EventKeys, ItemKeys
from app.store.lottery import read_stock
from app.store.lottery_keys import LotteryKeys

# A union's copies outlive one read by a little; each read rewrites them.
UNION_COPY_TTL_SECONDS = 30


@dataclass(frozen=True, slots=True)
class _ItemCounters:
    remaining: int | None
    member_units: int
    attempts: int
    accepted_orders: int
    accepted_units: int
    sold_out_ms: int | None
    participants: int
    participants_hll: bytes | None
    converted_hll: bytes | None


async def _item_counters(redis: RedisClient, items: list[ItemKeys]) -> list[_ItemCounters]:
    """Every item's counters in one pipeline (not a transaction: each item's keys share
    its slot, and a cluster client sends each slot's commands to its node)."""
    async with redis.pipeline(transaction=False) as pipe:
        for keys in items:
            pipe.hmget(keys.sale, "stock", "member_units")
            pipe.hgetall(keys.stats)
            # As a raw command: redis-py refuses pfcount() in a cluster pipeline (it may
            # name keys of several slots; here it never does).
            pipe.execute_command("PFCOUNT", keys.participants)
            # HyperLogLogs are binary strings: read undecoded, to be copied as they are.
            pipe.execute_command("GET", keys.participants, **{NEVER_DECODE: True})
            pipe.execute_command("GET", keys.converted, **{NEVER_DECODE: True})
        replies = await pipe.execute()
    return [_counters_of(*replies[n : n + 5]) for n in range(0, len(replies), 5)]


def _counters_of(
    sale: list[str | None],
    stats: dict[str, str],
    participants: int,
    participants_hll: bytes | None,
    converted_hll: bytes | None,
) -> _ItemCounters:
    stock, member_units = sale
    return _ItemCounters(
        remaining=None if stock is None else int(stock),
        member_units=int(member_units or 0),
        attempts=int(stats.get("attempts", 0)),
        accepted_orders=int(stats.get("accepted_orders", 0)),
        accepted_units=int(stats.get("accepted_units", 0)),
        sold_out_ms=int(stats["sold_out_ms"]) if "sold_out_ms" in stats else None,
        participants=int(participants),
        participants_hll=participants_hll,
        converted_hll=converted_hll,
    )


@dataclass(frozen=True, slots=True)
class _Counters:
    """What Redis knows of an event: each item's counters, distinct users over all."""

    by_item: dict[int, _ItemCounters]
    participants: int
    converted: int


@dataclass(frozen=True, slots=True)
class _Stored:
    """What Postgres knows: each item's stored orders, the ledger's stock of the items
    Redis does not have."""

    orders: dict[int, repository.ItemOrders]
    from_ledger: dict[int, int]
    access: AccessStats | None  # a queue or draw sale's numbers
    reminders: ReminderCounts
    members: MembersReport
    overdue_shipments: int
    returns: AfterSales


async def _distinct_users(
    redis: RedisClient, event_keys: EventKeys, counters: dict[int, _ItemCounters]
) -> tuple[int, int]:
    """(participants, users with an accepted order) over all items: the union of the
    items' HyperLogLogs, counted in the event's slot."""
    copies: dict[str, list[str]] = {"participants": [], "converted": []}
    async with redis.pipeline(transaction=True) as pipe:
        for item_id, found in counters.items():
            for name, hll in (
                ("participants", found.participants_hll),
                ("converted", found.converted_hll),
            ):
                if hll is not None:
                    copy = event_keys.copy_of(name, item_id)
                    pipe.set(copy, hll, ex=UNION_COPY_TTL_SECONDS)
                    copies[name].append(copy)
        for name in ("participants", "converted"):
            if copies[name]:
                pipe.execute_command("PFCOUNT", *copies[name])  # one slot: the event's
        results = await pipe.execute()
    counts = iter(results[len(copies["participants"]) + len(copies["converted"]) :])
    participants = int(next(counts)) if copies["participants"] else 0
    converted = int(next(counts)) if copies["converted"] else 0
    return participants, converted


def _moment(ms: int | None) -> datetime | None:
    return None if ms is None else from_ms(ms)


def _item_stats(
    item: EventItem,
    event: Event,
    found: _ItemCounters,
    stored: repository.ItemOrders,
    remaining: int,
    now: datetime,
) -> ItemStats:
    threshold = item.low_stock_threshold
    return ItemStats(
        id=item.id,
        name=item.name,
        state=events.item_state(event, remaining, now),
        remaining=max(remaining, 0),
        allocated=item.stock,
        attempts=found.attempts,
        participants=found.participants,
        accepted_orders=found.accepted_orders,
        accepted_units=found.accepted_units,
        member_units=found.member_units,
        member_reserved_left=_reserve_left(item, found.member_units, now),
        paid_orders=stored.paid_orders,
        paid_units=stored.paid_units,
        gmv=stored.paid_amount,
        low_stock_threshold=threshold,
        low_stock=threshold is not None and remaining < threshold,
        sold_out_at=_moment(found.sold_out_ms) if remaining <= 0 else None,
    )


def _reserve_left(item: EventItem, member_units: int, now: datetime) -> int:
    """Units only members may still take (purchase.lua's rule: the reserve less what
    members took, until its end)."""
    until = item.member_reserved_until
    if until is None or now >= until:
        return 0
    return max(item.member_reserved - member_units, 0)


async def _read_counters(services: Container, event: Event) -> _Counters:
    prefix = services.settings.redis_key_prefix
    by_item = await _item_counters(services.redis, [ItemKeys(prefix, i.id) for i in event.items])
    counters = dict(zip((i.id for i in event.items), by_item, strict=True))
    participants, converted = await _distinct_users(
        services.redis, EventKeys(prefix, event.id), counters
    )
    return _Counters(by_item=counters, participants=participants, converted=converted)


async def _read_stored(session: AsyncSession, event: Event, counters: _Counters) -> _Stored:
    orders = await repository.orders_by_item(session, event.id)
    missing = [i for i in event.items if counters.by_item[i.id].remaining is None]
    # Items not in Redis (an ended sale after a flush, say): the ledger has their stock.
    from_ledger = await events.remaining_from_ledger(session=session, items=missing)
    access = await access_stats(session=session, event=event)
    subscribed = await reminders.counts_of(session=session, event_id=event.id)
    members = await members_report(
        session=session,
        scope="event_id",
        scope_id=event.id,
        window=(event.starts_at, event.ends_at),
    )
    overdue = await shipping.overdue_count(session=session, now=utc_now(), event_id=event.id)
    return _Stored(
        orders=orders,
        overdue_shipments=overdue,
        from_ledger=from_ledger,
        access=access,
        reminders=subscribed,
        members=members,
        returns=await after_sales(session=session, scope="event_id", scope_id=event.id),
    )


async def compute_stats(*, session: AsyncSession, services: Container, event_id: int) -> EventStats:
    """The numbers read in the caller's session (a report: one reader, one request)."""
    event = await events.get_event_row(session=session, event_id=event_id)
    counters = await _read_counters(services, event)
    # Redis first, Postgres second: an order paid in between is counted as paid, never
    # as paid-but-not-accepted.
    stored = await _read_stored(session, event, counters)
    return _assemble(event, counters, stored)


async def read_stats(*, services: Container, event_id: int) -> tuple[EventStats, bool]:
    """The numbers read for the live readers (app/live/feed.py shares them), and whether
    shoppers may see them (not while the event's campaign awaits approval): Postgres in
    two short transactions around the Redis reads, so no connection waits on Redis."""
    async with services.sessionmaker() as session:
        event = await events.get_event_row(session=session, event_id=event_id)
        shown = events.shown_to_shoppers(event)
    counters = await _read_counters(services, event)
    # As above: Redis first, then the paid side.
    async with services.sessionmaker() as session:
        stored = await _read_stored(session, event, counters)
    return _assemble(event, counters, stored), shown


def _assemble(event: Event, counters: _Counters, stored: _Stored) -> EventStats:
    now = datetime.now(UTC)
    items = [
        _item_stats(
            item,
            event,
            counters.by_item[item.id],
            stored.orders.get(item.id, repository.EMPTY),
            _remaining(counters.by_item[item.id], stored.from_ledger.get(item.id, 0)),
            now,
        )
        for item in event.items
    ]
    participants, converted = counters.participants, counters.converted
    return EventStats(
        event_id=event.id,
        at=now,
        state=events.event_state(event, now),
        paused=event.paused,
        starts_at=event.starts_at,
        ends_at=event.ends_at,
        participants=participants,
        attempts=sum(i.attempts for i in items),
        accepted_orders=sum(i.accepted_orders for i in items),
        accepted_units=sum(i.accepted_units for i in items),
        member_units=sum(i.member_units for i in items),
        paid_orders=sum(i.paid_orders for i in items),
        paid_units=sum(i.paid_units for i in items),
        gmv=sum((i.gmv for i in items), Decimal("0.00")),
        overdue_shipments=stored.overdue_shipments,
        conversion=round(converted / participants, 4) if participants else 0.0,
        items=items,
        access=stored.access,
        reminders=stored.reminders,
        members=stored.members,
        returns_by_reason=stored.returns.returns_by_reason,
        refund_rate=stored.returns.refund_rate,
    )


def board_of(stats: EventStats) -> LiveBoard:
    """The public part of the numbers."""
    return LiveBoard(
        event_id=stats.event_id,
        starts_at=stats.starts_at,
        participants=stats.participants,
        waiting=stats.reminders.subscribed,
        items=[LiveItem(id=i.id, remaining=i.remaining, state=i.state) for i in stats.items],
    )


def _remaining(found: _ItemCounters, ledger: int) -> int:
    return found.remaining if found.remaining is not None else ledger


async def lottery_stats(
    *, session: AsyncSession, services: Container, lottery_id: int
) -> LotteryStats:
    """Draws and wins per prize from Postgres, units left from Redis."""
    lottery = await lottery_repository.get_lottery(session, lottery_id)
    if lottery is None:
        raise LotteryNotFound(f"No lottery {lottery_id}.")
    figures = await lottery_repository.lottery_figures(session, lottery_id)
    left, frozen = await read_stock(
        services.redis, LotteryKeys(services.settings.redis_key_prefix, lottery_id)
    )
    return LotteryStats(
        lottery_id=lottery_id,
        name=lottery.name,
        draws=figures.draws,
        drawers=figures.drawers,
        frozen=frozen,
        pending_approvals=sum(p.pending_approval for p in figures.prizes),
        prizes=[
            LotteryPrizeStats(
                id=p.prize_id,
                name=p.name,
                kind=p.kind,
                quantity=p.quantity,
                won=p.won,
                remaining=left.get(p.prize_id),
                paid=p.paid,
                pending_approval=p.pending_approval,
            )
            for p in figures.prizes
        ],
    )
