"""Is Redis at least as new as Postgres? Detecting a hot store that lost or rolled back
data before anything sells from it, and rebuilding the counters exactly. One mechanism for
every family of counters Redis decides on: an item's sale (stock and buyers, purchase.lua),
a coupon's claims (remaining and claimers, claim.lua), a promotion's daily places
(promotion.lua), a waiting room's places (queue.lua) and a lottery's prize stock and
draws per day (lottery_draw.lua); the next families plug in as a `CounterFamily`.

Postgres knows when the newest stored order (claim) of each entity was accepted (Redis's
own clock, stamped by the script), and which generation of its counters was built last
(app/generations). The entity's stream remembers the id of the last entry it ever added
(`XINFO STREAM` last-generated-id; the writer's XDEL does not lower it), a millisecond
timestamp of the same clock, taken in the same script call. A Redis at least as new as
Postgres has last-generated-id >= the newest stored acceptance, and counters of the
newest generation Postgres remembers.

- NEW: the counters were never built (a sale just created): built now; nothing can have
  sold on them, so this is no fault (never frozen for it).
- UNLOADED: built before and gone from Redis (it restarted empty, or from a snapshot older
  than the sale).
- ROLLED_BACK: the stream's last id is older than an entry Postgres already stored, the
  counters' generation is older than Postgres's, or a script found Redis behind what an API
  process saw accepted (`behind`): Redis came back from an older snapshot (or a replica that
  had missed writes was promoted). It believes more stock remains than is true.

A fault is handled in four steps, never skipping one: the entity is frozen (its script
answers `recovering` and takes nothing; every faulty entity of a pass is frozen before the
first is rebuilt), its counters are rebuilt from one consistent picture (the stream, then
one REPEATABLE READ snapshot of Postgres: `rebuild_sale`, `rebuild_claims`), replaced in
one script call that refuses unless the entity is still frozen, and it resumes by itself
only when no accepted order can have been lost: the Redis was rolled back with replicated
acceptance on (every 202 was on a replica, and the promoted one has it), or nothing can
have been sold yet (nothing stored and the sale not open). Otherwise it stays frozen,
reported in the log, `/metrics`, `/readyz` and `seckill audit` with the reason, until an
operator runs `seckill recover`.
"""

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

from redis.exceptions import ResponseError
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import queue as queues
from app.container import Container
from app.coupons import repository as coupons_repository
from app.coupons import service as coupons
from app.coupons.models import Coupon
from app.events import service as events
from app.events.access import QueueAccess
from app.events.models import Event, EventItem
from app.events.repository import items_not_ended
from app.generations import repository as generations
from app.generations.service import remember_built
from app.lottery import loading as lotteries
from app.lottery.models import Lottery
from app.metrics import hot_store_faults
from app.moments import from_ms, to_ms, utc_now
from app.orders.repository import newest_acceptance_by_item
from app.outages import describe
from app.promotions import service as promotions
from app.promotions.models import Promotion
from app.redis import RedisClient
from app.store.coupon_keys import CouponKeys
from app.store.freezes import BEHIND, FROZEN_WHY, freeze, frozen, unfreeze, why_frozen
from app.store.keys import ItemKeys
from app.store.lottery_keys import LotteryKeys
from app.store.promotion_keys import PromotionKeys
from app.store.queue_keys import QueueKeys
from app.store.warmup import Built

logger = logging.getLogger(__name__)

# purchase.lua reads TIME a moment after the stream id's clock is sampled for the call.
CLOCK_SLACK_MS = 50
REBUILD_LOCK_MS = 30_000

Row = TypeVar("Row")


class Verdict(StrEnum):
    OK = "ok"
    NEW = "new"
    UNLOADED = "unloaded"
    ROLLED_BACK = "rolled_back"


FAULTS = (Verdict.UNLOADED, Verdict.ROLLED_BACK)


@dataclass(frozen=True, slots=True)
class Finding:
    entity_id: int
    verdict: Verdict
    redis_last_ms: int | None  # the stream's last-generated-id (None: no stream)
    stored_last_ms: int | None  # the newest stored entry's acceptance (None: none)
    redis_epoch: int = 0  # the counters' generation in Redis (0: none)
    built_epoch: int | None = None  # the newest generation Postgres remembers (None: never)
    family: str = "sale"

    @property
    def why(self) -> str:
        return (
            f"{self.verdict.value}: stream last id {self.redis_last_ms} ms, newest stored "
            f"{self.stored_last_ms} ms, generation {self.redis_epoch} in Redis, "
            f"{self.built_epoch} built"
        )


class CounterFamily(ABC, Generic[Row]):
    """One kind of entity whose counters Redis decides on, and how to load them."""

    name: str  # the family in app/generations ("sale", "claims")
    noun: str  # for the operator: "item", "coupon"
    counter: str  # the hash field that exists once the counters are built
    # Every entry is in Postgres before anyone is told it was accepted (a promotion's place
    # commits with its order): a rebuild from Postgres loses nothing, so it resumes.
    answered_after_commit: bool = False
    recover_option: str = ""  # what `seckill recover` is told of the family ("--coupon ")

    @abstractmethod
    def hash_key(self, prefix: str, entity_id: int) -> str: ...

    @abstractmethod
    def stream_key(self, prefix: str, entity_id: int) -> str: ...

    @abstractmethod
    def tag(self, prefix: str, entity_id: int) -> str: ...

    @abstractmethod
    def id_of(self, row: Row) -> int: ...

    @abstractmethod
    def opens_at(self, row: Row) -> datetime:
        """The first moment anything can be sold (claimed) on it."""

    @abstractmethod
    async def live(self, session: AsyncSession) -> Sequence[Row]:
        """Every entity whose window has not closed."""

    @abstractmethod
    async def newest_stored(self, session: AsyncSession, ids: list[int]) -> dict[int, datetime]:
        """When each entity's newest stored entry was accepted."""

    @abstractmethod
    async def publish(self, services: Container, session: AsyncSession, rows: list[Row]) -> None:
        """Load entities never built (and refresh terms)."""

    @abstractmethod
    async def rebuild(self, services: Container, row: Row) -> Built:
        """Replace a frozen entity's counters from one consistent picture."""

    async def lacking(self, services: Container, rows: Sequence[Row]) -> set[int]:
        """Entities whose counters in Redis lack an entry Postgres has stored (a family
        without a stream finds a rolled-back Redis this way); none by default."""
        return set()


class Sales(CounterFamily[EventItem]):
    name, noun, counter = events.SALE, "item", "stock"

    def hash_key(self, prefix: str, entity_id: int) -> str:
        return ItemKeys(prefix, entity_id).sale

    def stream_key(self, prefix: str, entity_id: int) -> str:
        return ItemKeys(prefix, entity_id).orders

    def tag(self, prefix: str, entity_id: int) -> str:
        return ItemKeys(prefix, entity_id).tag

    def id_of(self, row: EventItem) -> int:
        return row.id

    def opens_at(self, row: EventItem) -> datetime:
        return row.event.starts_at - timedelta(seconds=row.event.member_early_access_seconds)

    async def live(self, session: AsyncSession) -> Sequence[EventItem]:
        return await items_not_ended(session, now=utc_now())

    async def newest_stored(self, session: AsyncSession, ids: list[int]) -> dict[int, datetime]:
        return await newest_acceptance_by_item(session, ids)

    async def publish(
        self, services: Container, session: AsyncSession, rows: list[EventItem]
    ) -> None:
        await events.publish_sale(session=session, services=services, items=rows)

    async def rebuild(self, services: Container, row: EventItem) -> Built:
        return await events.rebuild_sale(services=services, item=row)


class Claims(CounterFamily[Coupon]):
    name, noun, counter = coupons.CLAIMS, "coupon", "remaining"
    recover_option = "--coupon "

    def hash_key(self, prefix: str, entity_id: int) -> str:
        return CouponKeys(prefix, entity_id).coupon

    def stream_key(self, prefix: str, entity_id: int) -> str:
        return CouponKeys(prefix, entity_id).claims

    def tag(self, prefix: str, entity_id: int) -> str:
        return CouponKeys(prefix, entity_id).tag

    def id_of(self, row: Coupon) -> int:
        return row.id

    def opens_at(self, row: Coupon) -> datetime:
        return row.claim_starts_at

    async def live(self, session: AsyncSession) -> Sequence[Coupon]:
        return await coupons.claimable_coupons(session=session)

    async def newest_stored(self, session: AsyncSession, ids: list[int]) -> dict[int, datetime]:
        return await coupons_repository.newest_claim_by_coupon(session, ids)

    async def publish(self, services: Container, session: AsyncSession, rows: list[Coupon]) -> None:
        await coupons.publish_coupons(session=session, services=services, coupons=rows)

    async def rebuild(self, services: Container, row: Coupon) -> Built:
        return await coupons.rebuild_claims(services=services, coupon=row)


class Promotions(CounterFamily[Promotion]):
    """A promotion's daily places. It has no stream: a place is taken inside its order's
    transaction, before the commit. A Redis that lost or rolled back the counters is found
    by their generation, `behind`, or today's holders lacking a stored order (`lacking`)."""

    name, noun, counter = promotions.PROMOTIONS, "promotion", "epoch"
    answered_after_commit = True

    def hash_key(self, prefix: str, entity_id: int) -> str:
        return PromotionKeys(prefix, entity_id).promotion

    def stream_key(self, prefix: str, entity_id: int) -> str:
        return PromotionKeys(prefix, entity_id).takes

    def tag(self, prefix: str, entity_id: int) -> str:
        return PromotionKeys(prefix, entity_id).tag

    def id_of(self, row: Promotion) -> int:
        return row.id

    def opens_at(self, row: Promotion) -> datetime:
        return row.starts_at

    async def live(self, session: AsyncSession) -> Sequence[Promotion]:
        return await promotions.not_ended(session=session)

    async def newest_stored(self, session: AsyncSession, ids: list[int]) -> dict[int, datetime]:
        return {}

    async def publish(
        self, services: Container, session: AsyncSession, rows: list[Promotion]
    ) -> None:
        await promotions.publish_promotions(session=session, services=services, promotions=rows)

    async def rebuild(self, services: Container, row: Promotion) -> Built:
        return await promotions.rebuild_promotion(services=services, promotion=row)

    async def lacking(self, services: Container, rows: Sequence[Promotion]) -> set[int]:
        return await promotions.places_missing_in_redis(services=services, promotions=rows)


class Queues(CounterFamily[Event]):
    """An event's waiting room: its places are appended to the joins stream as orders are
    (queue.lua), and every admission is in Postgres before its pass is handed out. A
    rebuild puts the places back with the same scores, the admissions with the same
    times."""

    name, noun, counter = queues.QUEUES, "queue", "epoch"
    recover_option = "--queue "

    def hash_key(self, prefix: str, entity_id: int) -> str:
        return QueueKeys(prefix, entity_id).queue

    def stream_key(self, prefix: str, entity_id: int) -> str:
        return QueueKeys(prefix, entity_id).joins

    def tag(self, prefix: str, entity_id: int) -> str:
        return QueueKeys(prefix, entity_id).tag

    def id_of(self, row: Event) -> int:
        return row.id

    def opens_at(self, row: Event) -> datetime:
        # Places are taken from the queue's opening, before the sale starts.
        access = events.access_of(row)
        return access.opens_at if isinstance(access, QueueAccess) else row.starts_at

    async def live(self, session: AsyncSession) -> Sequence[Event]:
        return await queues.queue_events_not_ended(session=session)

    async def newest_stored(self, session: AsyncSession, ids: list[int]) -> dict[int, datetime]:
        return await queues.newest_joins(session=session, event_ids=ids)

    async def publish(self, services: Container, session: AsyncSession, rows: list[Event]) -> None:
        await queues.publish_queues(session=session, services=services, queue_events=rows)

    async def rebuild(self, services: Container, row: Event) -> Built:
        return await queues.rebuild_queue(services=services, event=row)


class Lotteries(CounterFamily[Lottery]):
    """A lottery's prize stock and each user's draws of the day: every draw, won or not,
    is appended to the draws stream as an order is (lottery_draw.lua); a rebuild counts
    the queued draws and one snapshot of the stored ones (app/lottery/loading.py)."""

    name, noun, counter = lotteries.LOTTERIES, "lottery", "epoch"
    recover_option = "--lottery "

    def hash_key(self, prefix: str, entity_id: int) -> str:
        return LotteryKeys(prefix, entity_id).lottery

    def stream_key(self, prefix: str, entity_id: int) -> str:
        return LotteryKeys(prefix, entity_id).draws

    def tag(self, prefix: str, entity_id: int) -> str:
        return LotteryKeys(prefix, entity_id).tag

    def id_of(self, row: Lottery) -> int:
        return row.id

    def opens_at(self, row: Lottery) -> datetime:
        return row.starts_at

    async def live(self, session: AsyncSession) -> Sequence[Lottery]:
        return await lotteries.lotteries_not_ended(session=session)

    async def newest_stored(self, session: AsyncSession, ids: list[int]) -> dict[int, datetime]:
        return await lotteries.newest_draws(session=session, lottery_ids=ids)

    async def publish(
        self, services: Container, session: AsyncSession, rows: list[Lottery]
    ) -> None:
        await lotteries.publish_lotteries(session=session, services=services, lotteries=rows)

    async def rebuild(self, services: Container, row: Lottery) -> Built:
        return await lotteries.rebuild_lottery(services=services, lottery=row)


SALES = Sales()
CLAIMS = Claims()
PROMOTIONS = Promotions()
QUEUES = Queues()
LOTTERIES = Lotteries()
FAMILIES: tuple[CounterFamily[Any], ...] = (SALES, CLAIMS, PROMOTIONS, QUEUES, LOTTERIES)


def _stream_older_than_postgres(last_ms: int | None, stored_ms: int | None) -> bool:
    return stored_ms is not None and (last_ms is None or stored_ms > last_ms + CLOCK_SLACK_MS)


async def inspect(
    *,
    redis: RedisClient,
    prefix: str,
    family: CounterFamily[Row],
    newest_stored: dict[int, datetime],
    built: dict[int, int],
    ids: Sequence[int],
    lacking: Collection[int] = (),
) -> list[Finding]:
    """One pipeline for all: is each entity's counters there, of which generation, and how
    new is its stream? `lacking`: entities found missing a stored entry (`family.lacking`)."""
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for entity_id in ids:
            pipe.hmget(family.hash_key(prefix, entity_id), [family.counter, BEHIND, "epoch"])
            pipe.xinfo_stream(family.stream_key(prefix, entity_id))
        replies = await pipe.execute(raise_on_error=False)
    findings: list[Finding] = []
    for index, entity_id in enumerate(ids):
        fields, stream = replies[2 * index], replies[2 * index + 1]
        if isinstance(fields, Exception):
            raise fields
        loaded, behind = fields[0] is not None, fields[1] is not None
        redis_epoch = int(fields[2] or 0)
        if isinstance(stream, ResponseError):  # no such key: no stream at all
            last_ms = None
        elif isinstance(stream, Exception):
            raise stream
        else:
            last_ms = int(str(stream["last-generated-id"]).split("-")[0])
        stored = newest_stored.get(entity_id)
        stored_ms = to_ms(stored) if stored is not None else None
        built_epoch = built.get(entity_id)
        if not loaded:
            verdict = Verdict.UNLOADED if built_epoch is not None else Verdict.NEW
        elif (
            behind
            or entity_id in lacking
            or _stream_older_than_postgres(last_ms, stored_ms)
            or (built_epoch is not None and redis_epoch < built_epoch)
        ):
            verdict = Verdict.ROLLED_BACK
        else:
            verdict = Verdict.OK
        findings.append(
            Finding(
                entity_id,
                verdict,
                last_ms,
                stored_ms,
                redis_epoch,
                built_epoch,
                family.name,
            )
        )
    return findings


def nothing_can_be_lost(services: Container, opens_at: datetime, finding: Finding) -> bool:
    """Could a client hold a 202 for an order that Redis lost? Not if Redis was rolled back
    to a replica that had every 202 (replicated acceptance); not if nothing can have been
    accepted yet. A Redis that lost the counters outright (restarted empty: its replicas
    resync from it and lose them too) may have lost 202'd orders, replicas or not."""
    if finding.verdict is Verdict.ROLLED_BACK and services.settings.redis_min_replica_acks > 0:
        return True
    return finding.stored_last_ms is None and datetime.now(UTC) < opens_at


async def _locked(redis: RedisClient, key: str) -> bool:
    return bool(await redis.set(key, "1", nx=True, px=REBUILD_LOCK_MS))


async def _check_family(services: Container, family: CounterFamily[Row]) -> list[Finding]:
    redis, prefix = services.redis, services.settings.redis_key_prefix
    async with services.sessionmaker() as session:
        rows = list(await family.live(session))
        ids = [family.id_of(row) for row in rows]
        newest = await family.newest_stored(session, ids)
        built = await generations.built_epochs(session, family.name, ids)
    by_id = {family.id_of(row): row for row in rows}
    lacking = await family.lacking(services, rows)

    async def look(entity_ids: Sequence[int]) -> list[Finding]:
        return await inspect(
            redis=redis,
            prefix=prefix,
            family=family,
            newest_stored=newest,
            built=built,
            ids=entity_ids,
            lacking=lacking,
        )

    findings = await look(ids)
    new = [by_id[f.entity_id] for f in findings if f.verdict is Verdict.NEW]
    if new:
        # Not loaded yet is not lost: load them (a process may be doing it right now).
        async with services.sessionmaker() as session:
            await family.publish(services, session, new)
    # Counters built but whose generation Postgres does not know yet (a build whose
    # record was interrupted): remember it now.
    unrecorded = {
        f.entity_id: f.redis_epoch
        for f in findings
        if f.verdict is Verdict.OK and f.redis_epoch > (f.built_epoch or 0)
    }
    await remember_built(services.sessionmaker, family.name, unrecorded)
    suspects = [f.entity_id for f in findings if f.verdict in FAULTS]
    if not suspects:
        return []
    # One process rebuilds an entity at a time (the others find it rebuilt next pass);
    # what it found is checked again under the lock, then every faulty one is frozen
    # before the first is rebuilt.
    held = [i for i in suspects if await _locked(redis, f"{family.tag(prefix, i)}:rebuilding")]
    try:
        faulty = [f for f in await look(held) if f.verdict in FAULTS]
        await freeze(redis, [family.hash_key(prefix, f.entity_id) for f in faulty])
        for finding in faulty:
            await redis.hset(family.hash_key(prefix, finding.entity_id), FROZEN_WHY, finding.why)
        for finding in faulty:
            await _rebuild(services, family, by_id[finding.entity_id], finding)
    finally:
        for entity_id in held:
            await redis.delete(f"{family.tag(prefix, entity_id)}:rebuilding")
    return faulty


async def _rebuild(
    services: Container, family: CounterFamily[Row], row: Row, finding: Finding
) -> bool:
    """Rebuild a frozen entity and resume it if no accepted order can have been lost.
    Returns True if it stays frozen."""
    redis, prefix = services.redis, services.settings.redis_key_prefix
    entity_id = family.id_of(row)
    await family.rebuild(services, row)
    if finding.stored_last_ms is not None and finding.stored_last_ms > (finding.redis_last_ms or 0):
        # The stream's last id catches up with Postgres, so the next check finds it as new
        # (its entries, if any survived, are all older: XSETID refuses to go below them).
        with contextlib.suppress(ResponseError):
            await redis.execute_command(
                "XSETID", family.stream_key(prefix, entity_id), f"{finding.stored_last_ms}-0"
            )
    hot_store_faults.labels(finding.verdict.value).inc()
    if family.answered_after_commit or nothing_can_be_lost(services, family.opens_at(row), finding):
        await unfreeze(redis, family.hash_key(prefix, entity_id))
        await redis.hdel(family.hash_key(prefix, entity_id), FROZEN_WHY)
        logger.warning(
            "%s %d: Redis %s; rebuilt from Postgres and the stream, and selling again: no "
            "accepted order can have been lost",
            family.noun,
            entity_id,
            finding.why,
        )
        return False
    logger.error(
        "%s %d: Redis %s; rebuilt from Postgres and the stream and FROZEN: what was "
        "accepted after %s may have been lost with Redis's data and be in customers' "
        "hands. Check, then `seckill recover %s%d` to sell again (README: runbook 'Redis "
        "lost data').",
        family.noun,
        entity_id,
        finding.why,
        from_ms(finding.stored_last_ms).isoformat()
        if finding.stored_last_ms is not None
        else "the start",
        family.recover_option,
        entity_id,
    )
    return True


async def check_once(services: Container) -> list[Finding]:
    """Check every live or upcoming entity of every family; load the new ones, rebuild
    those Redis lost or rolled back. Returns the faults found."""
    findings: list[Finding] = []
    for family in FAMILIES:
        findings += await _check_family(services, family)
    return findings


async def frozen_entities(
    redis: RedisClient, prefix: str, family: CounterFamily[Any], ids: Sequence[int]
) -> dict[int, str]:
    """Which of these are frozen, and why (as the freezing check wrote it)."""
    keys = [family.hash_key(prefix, i) for i in ids]
    flags = await frozen(redis, keys)
    held = [(i, key) for i, key, flag in zip(ids, keys, flags, strict=True) if flag]
    if not held:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for _i, key in held:
            pipe.hmget(key, [FROZEN_WHY, BEHIND])
        reasons = await pipe.execute()
    return {
        i: why_frozen(why, behind) for (i, _key), (why, behind) in zip(held, reasons, strict=True)
    }


async def recover(
    redis: RedisClient, prefix: str, family: CounterFamily[Row], entity_id: int
) -> bool:
    """An operator resumes a frozen entity; False if it was not frozen."""
    key = family.hash_key(prefix, entity_id)
    await redis.hdel(key, FROZEN_WHY)
    return await unfreeze(redis, key)


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
