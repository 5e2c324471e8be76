"""Live stats of a sale, read at most a second behind.

Counting happens in purchase.lua at no extra round trip (see its KEYS[6..8]): each item
keeps a HyperLogLog of the users who tried, one of the users accepted, and counters of
attempts and accepted orders/units. Here they are read per item (one pipeline each, in
the item's slot), the HyperLogLogs are copied into the event's slot to count the union
(a user trying three items is one participant), and the paid side comes from Postgres.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from redis.client import NEVER_DECODE
from sqlalchemy.ext.asyncio import AsyncSession

from app.container import Container
from app.events import service as events
from app.events.models import Event, EventItem
from app.live import repository
from app.live.schemas import EventStats, ItemStats, LiveBoard, LiveItem
from app.redis import RedisClient
from app.store.keys import EventKeys, ItemKeys

# A union's copies outlive one read by a little; each read rewrites them.
UNION_COPY_TTL_SECONDS = 30


@dataclass(frozen=True, slots=True)
class _ItemCounters:
    remaining: int | None
    attempts: int
    accepted_orders: int
    accepted_units: int
    sold_out_ms: int | None
    participants: int
    participants_hll: bytes | None
    converted_hll: bytes | None


async def _item_counters(redis: RedisClient, keys: ItemKeys) -> _ItemCounters:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hget(keys.sale, "stock")
        pipe.hgetall(keys.stats)
        pipe.pfcount(keys.participants)
        # HyperLogLogs are binary strings: read undecoded, to be copied as they are.
        pipe.execute_command("GET", keys.participants, **{NEVER_DECODE: True})
        pipe.execute_command("GET", keys.converted, **{NEVER_DECODE: True})
        stock, stats, participants, participants_hll, converted_hll = await pipe.execute()
    return _ItemCounters(
        remaining=None if stock is None else int(stock),
        attempts=int(stats.get("attempts", 0)),
        accepted_orders=int(stats.get("accepted_orders", 0)),
        accepted_units=int(stats.get("accepted_units", 0)),
        sold_out_ms=int(stats["sold_out_ms"]) if "sold_out_ms" in stats else None,
        participants=int(participants),
        participants_hll=participants_hll,
        converted_hll=converted_hll,
    )


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
                pipe.pfcount(*copies[name])
        results = await pipe.execute()
    counts = iter(results[len(copies["participants"]) + len(copies["converted"]) :])
    participants = int(next(counts)) if copies["participants"] else 0
    converted = int(next(counts)) if copies["converted"] else 0
    return participants, converted


def _moment(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


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
        paid_orders=stored.paid_orders,
        paid_units=stored.paid_units,
        gmv=stored.paid_amount,
        low_stock_threshold=threshold,
        low_stock=threshold is not None and remaining < threshold,
        sold_out_at=_moment(found.sold_out_ms) if remaining <= 0 else None,
    )


async def compute_stats(*, session: AsyncSession, services: Container, event_id: int) -> EventStats:
    event = await events.get_event_row(session=session, event_id=event_id)
    prefix = services.settings.redis_key_prefix
    counters = {
        item.id: await _item_counters(services.redis, ItemKeys(prefix, item.id))
        for item in event.items
    }
    participants, converted = await _distinct_users(
        services.redis, EventKeys(prefix, event_id), counters
    )
    # Redis first, Postgres second: an order paid in between is counted as paid, never
    # as paid-but-not-accepted.
    stored = await repository.orders_by_item(session, event_id)
    missing = [i for i in event.items if counters[i.id].remaining is None]
    # Items not in Redis (an ended sale after a flush, say): the ledger has their stock.
    from_ledger = await events.remaining_from_ledger(session=session, items=missing)
    now = datetime.now(UTC)
    items = [
        _item_stats(
            item,
            event,
            counters[item.id],
            stored.get(item.id, repository.EMPTY),
            _remaining(counters[item.id], from_ledger.get(item.id, 0)),
            now,
        )
        for item in event.items
    ]
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
        paid_orders=sum(i.paid_orders for i in items),
        paid_units=sum(i.paid_units for i in items),
        gmv=sum((i.gmv for i in items), Decimal("0.00")),
        conversion=round(converted / participants, 4) if participants else 0.0,
        items=items,
    )


def _remaining(found: _ItemCounters, ledger: int) -> int:
    return found.remaining if found.remaining is not None else ledger


class _Cache:
    """Numbers per (prefix, event) for a moment: a wall of dashboards and a crowd polling
    the live board cost one computation per interval per process."""

    def __init__(self) -> None:
        self._stats: dict[tuple[str, int], tuple[float, EventStats]] = {}

    def get(self, key: tuple[str, int], ttl: float) -> EventStats | None:
        found = self._stats.get(key)
        if found is None or time.monotonic() - found[0] >= ttl:
            return None
        return found[1]

    def put(self, key: tuple[str, int], stats: EventStats) -> None:
        if len(self._stats) > 1000:
            self._stats.clear()
        self._stats[key] = (time.monotonic(), stats)


_cache = _Cache()


async def event_stats(*, session: AsyncSession, services: Container, event_id: int) -> EventStats:
    key = (services.settings.redis_key_prefix, event_id)
    cached = _cache.get(key, services.settings.stats_cache_seconds)
    if cached is not None:
        return cached
    stats = await compute_stats(session=session, services=services, event_id=event_id)
    _cache.put(key, stats)
    return stats


async def live_board(*, session: AsyncSession, services: Container, event_id: int) -> LiveBoard:
    stats = await event_stats(session=session, services=services, event_id=event_id)
    return LiveBoard(
        event_id=stats.event_id,
        participants=stats.participants,
        items=[LiveItem(id=i.id, remaining=i.remaining, state=i.state) for i in stats.items],
    )
