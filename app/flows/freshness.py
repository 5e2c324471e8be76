"""Is Redis at least as new as Postgres? Detecting a hot store that lost or rolled back
data before it sells from it, and rebuilding the item exactly.

Postgres knows when the newest stored order of each item was accepted (`accepted_at`,
Redis's own clock, stamped by purchase.lua). The item's stream remembers the id of the
last entry it ever added (`XINFO STREAM` last-generated-id; the writer's XDEL does not
lower it), a millisecond timestamp of the same clock, taken in the same script call. A
Redis at least as new as Postgres has last-generated-id >= the newest stored acceptance.

- ROLLED_BACK: the stream's last id is older than an order Postgres already stored: Redis
  came back from an older snapshot (or a replica that had missed writes was promoted).
  It believes more stock remains than is true and would sell units already sold.
- UNLOADED: the live sale is gone from Redis (it restarted empty).

Either way the item is frozen at once (purchase.lua answers `10 recovering`: 503, nothing
taken), then rebuilt exactly from Postgres plus the entries still in the stream (stock =
allocated - stored - in the stream, buyers' counts from both; `publish_sale`). Orders
accepted after the newest stored one may have been lost with the data, and clients may
hold 202s for them, so the item resumes by itself only when none can have been lost:
replicated acceptance is on (every 202 was on a replica), or nothing can have been sold
yet (no stored order and the sale not open). Otherwise it stays frozen, reported in the
log, `/metrics` and `seckill audit`, until an operator runs `seckill recover ITEM_ID`.
"""

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from redis.exceptions import ResponseError

from app.container import Container
from app.events.models import EventItem
from app.events.repository import items_not_ended
from app.events.service import publish_sale
from app.metrics import hot_store_faults
from app.orders.repository import newest_acceptance_by_item
from app.outages import describe
from app.redis import RedisClient
from app.store.keys import ItemKeys

logger = logging.getLogger(__name__)

# purchase.lua reads TIME a moment after the stream id's clock is sampled for the call.
CLOCK_SLACK_MS = 50
FROZEN = "frozen"
BEHIND = "behind"  # set with FROZEN by purchase.lua (app/store/generations.py)
REBUILD_LOCK_MS = 30_000


class Verdict(StrEnum):
    OK = "ok"
    UNLOADED = "unloaded"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True, slots=True)
class Finding:
    item_id: int
    verdict: Verdict
    redis_last_ms: int | None  # the stream's last-generated-id (None: no stream)
    stored_last_ms: int | None  # the newest stored order's acceptance (None: none)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _stream_older_than_postgres(last_ms: int | None, stored_ms: int | None) -> bool:
    return stored_ms is not None and (last_ms is None or stored_ms > last_ms + CLOCK_SLACK_MS)


async def inspect(
    *, redis: RedisClient, prefix: str, newest_stored: dict[int, datetime], item_ids: Sequence[int]
) -> list[Finding]:
    """One pipeline for all items: is each live sale there, and how new is its stream?"""
    if not item_ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for item_id in item_ids:
            keys = ItemKeys(prefix, item_id)
            pipe.hmget(keys.sale, ["stock", BEHIND])
            pipe.xinfo_stream(keys.orders)
        replies = await pipe.execute(raise_on_error=False)
    findings: list[Finding] = []
    for index, item_id in enumerate(item_ids):
        fields, stream = replies[2 * index], replies[2 * index + 1]
        if isinstance(fields, Exception):
            raise fields
        loaded, behind = fields[0] is not None, fields[1] is not None
        if isinstance(stream, ResponseError):  # no such key: no stream at all
            last_ms = None
        elif isinstance(stream, Exception):
            raise stream
        else:
            last_ms = int(str(stream["last-generated-id"]).split("-")[0])
        stored = newest_stored.get(item_id)
        stored_ms = _ms(stored) if stored is not None else None
        if not loaded:
            verdict = Verdict.UNLOADED
        elif behind or _stream_older_than_postgres(last_ms, stored_ms):
            # `behind`: a purchase found Redis older than what an API process saw accepted
            verdict = Verdict.ROLLED_BACK
        else:
            verdict = Verdict.OK
        findings.append(Finding(item_id, verdict, last_ms, stored_ms))
    return findings


async def freeze(redis: RedisClient, prefix: str, item_id: int) -> None:
    """Purchases of the item answer 503 `recovering` from now on, taking nothing."""
    await redis.hset(ItemKeys(prefix, item_id).sale, FROZEN, "1")


async def unfreeze(redis: RedisClient, prefix: str, item_id: int) -> bool:
    """Selling resumes; False if the item was not frozen."""
    return bool(await redis.hdel(ItemKeys(prefix, item_id).sale, FROZEN))


async def frozen_items(redis: RedisClient, prefix: str, item_ids: Sequence[int]) -> list[int]:
    if not item_ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for item_id in item_ids:
            pipe.hget(ItemKeys(prefix, item_id).sale, FROZEN)
        flags = await pipe.execute()
    return [i for i, flag in zip(item_ids, flags, strict=True) if flag == "1"]


def nothing_can_be_lost(services: Container, item: EventItem, finding: Finding) -> bool:
    """Could a client hold a 202 for an order that Redis lost? Not if every 202 was on a
    replica, nor if no order can have been accepted yet."""
    if services.settings.redis_min_replica_acks > 0:
        return True
    opens = item.event.starts_at - timedelta(seconds=item.event.member_early_access_seconds)
    return finding.stored_last_ms is None and datetime.now(UTC) < opens


async def rebuild(services: Container, item: EventItem, finding: Finding) -> bool:
    """Freeze, rebuild exactly from Postgres + the surviving stream, and resume if no
    accepted order can have been lost. Returns True if the item stays frozen."""
    redis, prefix = services.redis, services.settings.redis_key_prefix
    keys = ItemKeys(prefix, item.id)
    # One worker rebuilds an item at a time (the others find it rebuilt next pass).
    lock = f"{keys.tag}:rebuilding"
    if not await redis.set(lock, "1", nx=True, px=REBUILD_LOCK_MS):
        return True
    try:
        return await _rebuild(services, item, finding)
    finally:
        await redis.delete(lock)


async def _rebuild(services: Container, item: EventItem, finding: Finding) -> bool:
    redis, prefix = services.redis, services.settings.redis_key_prefix
    keys = ItemKeys(prefix, item.id)
    await freeze(redis, prefix, item.id)
    # Drop the stale counters (the sale hash keeps its terms and the freeze): warmup.lua
    # writes them only when missing.
    await redis.hdel(keys.sale, "stock", BEHIND)
    await redis.delete(keys.buyers)
    async with services.sessionmaker() as session:
        await publish_sale(session=session, services=services, items=[item])
    if finding.stored_last_ms is not None and finding.stored_last_ms > (finding.redis_last_ms or 0):
        # The stream's last id catches up with Postgres, so the next check finds it as new
        # (its entries, if any survived, are all older: XSETID refuses to go below them).
        with contextlib.suppress(ResponseError):
            await redis.execute_command("XSETID", keys.orders, f"{finding.stored_last_ms}-0")
    hot_store_faults.labels(finding.verdict.value).inc()
    if nothing_can_be_lost(services, item, finding):
        await unfreeze(redis, prefix, item.id)
        logger.warning(
            "item %d: Redis %s (stream last id %s ms, newest stored order %s ms); rebuilt "
            "from Postgres and the stream, and selling again: no accepted order can have "
            "been lost",
            item.id,
            finding.verdict.value,
            finding.redis_last_ms,
            finding.stored_last_ms,
        )
        return False
    logger.error(
        "item %d: Redis %s (stream last id %s ms, newest stored order %s ms); rebuilt "
        "from Postgres and the stream and FROZEN: orders accepted after %s may have been "
        "lost with Redis's data and their units may be in customers' hands. Check, then "
        "`seckill recover %d` to sell again (README: runbook 'Redis lost data').",
        item.id,
        finding.verdict.value,
        finding.redis_last_ms,
        finding.stored_last_ms,
        datetime.fromtimestamp(finding.stored_last_ms / 1000, UTC).isoformat()
        if finding.stored_last_ms is not None
        else "the sale's start",
        item.id,
    )
    return True


async def check_once(services: Container) -> list[Finding]:
    """Check every live or upcoming item; rebuild those Redis lost or rolled back."""
    async with services.sessionmaker() as session:
        items = list(await items_not_ended(session, now=datetime.now(UTC)))
        newest = await newest_acceptance_by_item(session, [i.id for i in items])
    findings = await inspect(
        redis=services.redis,
        prefix=services.settings.redis_key_prefix,
        newest_stored=newest,
        item_ids=[i.id for i in items],
    )
    by_id = {i.id: i for i in items}
    for finding in findings:
        if finding.verdict is not Verdict.OK:
            await rebuild(services, by_id[finding.item_id], finding)
    return [f for f in findings if f.verdict is not Verdict.OK]


class FreshnessWatch:
    """Runs check_once every `worker_freshness_check_seconds` in `seckill worker`."""

    def __init__(self, *, services: Container) -> None:
        self.services = services

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.services.settings.worker_freshness_check_seconds
        failing = False
        while not stop.is_set():
            try:
                await check_once(self.services)
                if failing:
                    logger.info("hot-store check: working again")
                failing = False
            except Exception as exc:  # Redis or Postgres away: the next pass checks again
                if not failing:
                    logger.warning("hot-store check failed (%s); retrying", describe(exc))
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
