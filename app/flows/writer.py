"""The order writer: moves accepted orders from the item streams, claimed coupons from
the coupon streams, waiting-room places from the joins streams and lottery draws from the
draws streams into Postgres.

Each pass is a few small steps: find the item streams, take a batch (entries a dead
consumer left behind first, then new ones), store it in one transaction, acknowledge
after the commit. Postgres being down only delays the commit (accepted orders wait in
the stream); an entry that fails on its own data too often goes to the dead-letter
stream, never silently away.
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from redis.exceptions import ResponseError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.access.queue_repository import insert_places
from app.config import Settings
from app.coupons.repository import insert_claims
from app.lottery.repository import insert_draws
from app.metrics import (
    claims_written,
    orders_dead_lettered,
    orders_key_reused,
    orders_written,
    places_written,
)
from app.orders.repository import insert_orders
from app.outages import REDIS_UNAVAILABLE, describe
from app.redis import RedisClient
from app.store.coupon_keys import CouponKeys, coupons_registry
from app.store.keys import GlobalKeys, ItemKeys
from app.store.lottery_keys import LotteryKeys, lotteries_registry
from app.store.queue_keys import QueueKeys, queues_registry
from app.store.records import (
    NewClaim,
    NewDraw,
    NewOrder,
    NewPlace,
    parse_claim,
    parse_draw,
    parse_order,
    parse_place,
)
from app.store.release import release_script_call, run_release
from app.store.scripts import Scripts
from app.store.stored import forget_stored

logger = logging.getLogger(__name__)

# Errors about the data itself: retrying the same entry will fail the same way.
DATA_ERRORS = (IntegrityError, DataError, ProgrammingError)
FIRST_RETRY_SECONDS = 0.1
HEARTBEAT_SECONDS = 1.0
# The SQLSTATE classes of such errors: 22 data exception (numeric overflow, bad cast,
# string too long, division by zero), 23 integrity constraint violation, 42 syntax error
# or access rule violation. SQLAlchemy's asyncpg dialect raises some of these as a plain
# DBAPIError, so the class is read from the driver's error, not from the exception type.
DATA_ERROR_CLASSES = ("22", "23", "42")


def is_data_error(error: BaseException) -> bool:
    """True if Postgres refused the rows themselves (retrying them fails the same way);
    False for an outage, a lost connection, a deadlock or a serialization failure."""
    if isinstance(error, DATA_ERRORS):
        return True
    if isinstance(error, DBAPIError):
        state = getattr(error.orig, "sqlstate", None) or getattr(
            getattr(error.orig, "__cause__", None), "sqlstate", None
        )
        return isinstance(state, str) and state[:2] in DATA_ERROR_CLASSES
    return False


Record = NewOrder | NewClaim | NewPlace | NewDraw


@dataclass(frozen=True, slots=True)
class Source:
    """A stream the writer drains: an item's accepted orders, a coupon's claims or a
    waiting room's new places, with the hash of `queued` marks its entries leave behind
    until they are stored and the hash counting Postgres's refusals of its entries (both
    in the stream's slot), and the decoder of its entries."""

    stream: str
    queued: str
    failures: str
    parse: Callable[[dict[str, str]], Record | None]

    @classmethod
    def of_item(cls, keys: ItemKeys) -> "Source":
        return cls(keys.orders, keys.queued, keys.failures, parse_order)

    @classmethod
    def of_coupon(cls, keys: CouponKeys) -> "Source":
        return cls(keys.claims, keys.queued, keys.failures, parse_claim)

    @classmethod
    def of_queue(cls, keys: QueueKeys) -> "Source":
        return cls(keys.joins, keys.queued, keys.failures, parse_place)

    @classmethod
    def of_lottery(cls, keys: LotteryKeys) -> "Source":
        return cls(keys.draws, keys.queued, keys.failures, parse_draw)


class Entry(NamedTuple):
    """One stream entry: where it sits, and the record it carries (None if unreadable).
    A named tuple, as NewOrder: the writer makes one per order."""

    stream: str
    entry_id: str
    fields: dict[str, str]
    record: Record | None


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class OrderWriter:
    def __init__(
        self,
        *,
        redis: RedisClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        consumer: str | None = None,
    ) -> None:
        self.redis = redis
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.group = settings.worker_group
        self.consumer = consumer or settings.worker_consumer or default_consumer_name()
        self.keys = GlobalKeys(settings.redis_key_prefix)
        self.sources: dict[str, Source] = {}
        self._streams_read_at = 0.0
        self._reclaimed_at = 0.0
        self._beat_at = -HEARTBEAT_SECONDS
        self.stored = 0
        self._scripts: Scripts | None = None  # loaded when first needed
        self.acknowledged = 0  # entries stored (now or before) and acknowledged by lanes
        self._lanes: set[asyncio.Task[int]] = set()
        # (stream, entry id) of the entries the lanes hold: never reclaimed from ourselves.
        self._in_hand: set[tuple[str, str]] = set()

    # -- the loop -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until `stop`. While Redis is unreachable the writer waits with
        backoff (one log line when lost, one when back) and never exits: the accepted
        orders are in Redis, and it is the only one who moves them."""
        logger.info("order writer %s started (group %s)", self.consumer, self.group)
        # A restarted consumer of the same name (or one that lost Redis mid-batch) first
        # finishes what it had been given.
        resume = True
        retry_in = FIRST_RETRY_SECONDS
        redis_lost = False
        while not stop.is_set():
            self.heartbeat()
            try:
                busy = await self.pass_once(stop, resume=resume)
            except REDIS_UNAVAILABLE as exc:
                if not redis_lost:
                    logger.warning(
                        "order writer: Redis unreachable (%s); retrying with backoff",
                        describe(exc),
                    )
                    redis_lost = True
                resume = True
                await self.pause(stop, retry_in)
                retry_in = min(retry_in * 2, self.settings.worker_backoff_max_seconds)
                continue
            if redis_lost:
                logger.info("order writer: Redis reachable again; resuming")
                redis_lost = False
            resume = False
            retry_in = FIRST_RETRY_SECONDS
            if not busy:
                await self.pause(stop, self.settings.worker_idle_sleep_seconds)
        # The batches in hand are finished even though asked to stop: that is the drain.
        try:
            await self.settle()
        except REDIS_UNAVAILABLE as exc:
            logger.warning("order writer: Redis lost while stopping (%s)", describe(exc))
        logger.info("order writer %s stopped after storing %d orders", self.consumer, self.stored)

    async def pass_once(self, stop: asyncio.Event, *, resume: bool = False) -> bool:
        """Take one batch and hand it to a lane (waiting for a free one); False if there
        was nothing to do."""
        await self.refresh_streams(force=resume)
        if resume:
            # This consumer's pending entries include those of batches still in hand:
            # they are finished first, so no entry is stored by two lanes at once.
            await self.settle()
            batch = await self.read_new(start="0")
        else:
            batch = await self.reclaim_stale() or await self.read_new()
        if not batch:
            self.reap()
            return False
        await self.submit(batch, stop)
        return True

    # -- lanes: batches stored at once ----------------------------------------------

    async def submit(self, batch: Sequence[Entry], stop: asyncio.Event) -> None:
        """Store the batch in a lane of its own, once one of `worker_lanes` is free: the
        next batch is read and decoded while Postgres stores this one, and with several
        lanes several Postgres backends store at once (each batch is its own
        transaction, acknowledged after its own commit)."""
        while len(self._lanes) >= self.settings.worker_lanes:
            await asyncio.wait(self._lanes, return_when=asyncio.FIRST_COMPLETED)
            self.reap()
        held = {(entry.stream, entry.entry_id) for entry in batch}
        self._in_hand |= held
        lane = asyncio.create_task(self._store_batch(batch, held, stop))
        self._lanes.add(lane)

    async def _store_batch(
        self, batch: Sequence[Entry], held: set[tuple[str, str]], stop: asyncio.Event
    ) -> int:
        try:
            return await self.process(batch, stop)
        finally:
            self._in_hand -= held

    def reap(self) -> None:
        """Count what the finished lanes stored; a lane's error is raised here (after the
        other finished lanes are counted)."""
        done = [lane for lane in self._lanes if lane.done()]
        self._lanes.difference_update(done)
        failed = [error for lane in done if (error := lane.exception()) is not None]
        self.acknowledged += sum(lane.result() for lane in done if lane.exception() is None)
        if failed:
            raise failed[0]

    async def settle(self) -> None:
        """Wait for every lane to finish."""
        if self._lanes:
            await asyncio.wait(self._lanes)
        self.reap()

    def heartbeat(self) -> None:
        """Tell the health check this loop is alive (at most once a second)."""
        path = self.settings.worker_heartbeat_file
        now = time.monotonic()
        if path is None or now - self._beat_at < HEARTBEAT_SECONDS:
            return
        self._beat_at = now
        try:
            path.touch()
        except OSError as exc:
            logger.warning("cannot touch the heartbeat file %s: %s", path, exc)

    @staticmethod
    async def pause(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    async def drain(self) -> int:
        """Store everything currently in the streams, then return how many entries were
        stored and acknowledged (tests, benchmarks)."""
        never = asyncio.Event()
        await self.settle()
        before = self.acknowledged
        await self.refresh_streams(force=True)
        while batch := await self.read_new(start="0"):
            stored = await self.process(batch, never)
            self.acknowledged += stored
            if stored == 0:
                break  # only entries that keep failing are left; reclaim handles them
        while batch := await self.read_new():
            await self.submit(batch, never)
        await self.settle()
        return self.acknowledged - before

    @property
    def streams(self) -> list[str]:
        return list(self.sources)

    async def process(self, batch: Sequence[Entry], stop: asyncio.Event) -> int:
        readable = [e for e in batch if e.record is not None]
        for entry in batch:
            if entry.record is None:
                await self.dead_letter(entry, reason="unreadable entry")
        stored = await self.store(readable, stop)
        await self.acknowledge(stored)
        return len(stored)

    # -- steps ----------------------------------------------------------------------

    async def refresh_streams(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if (
            not force
            and now - self._streams_read_at < self.settings.worker_registry_refresh_seconds
        ):
            return
        prefix = self.settings.redis_key_prefix
        item_ids = sorted(int(i) for i in await self.redis.smembers(self.keys.items))
        coupon_ids = sorted(int(i) for i in await self.redis.smembers(coupons_registry(prefix)))
        event_ids = sorted(int(i) for i in await self.redis.smembers(queues_registry(prefix)))
        lottery_ids = sorted(int(i) for i in await self.redis.smembers(lotteries_registry(prefix)))
        sources = (
            [Source.of_item(ItemKeys(prefix, i)) for i in item_ids]
            + [Source.of_coupon(CouponKeys(prefix, i)) for i in coupon_ids]
            + [Source.of_queue(QueueKeys(prefix, i)) for i in event_ids]
            + [Source.of_lottery(LotteryKeys(prefix, i)) for i in lottery_ids]
        )
        self.sources = {source.stream: source for source in sources}
        self._streams_read_at = now

    async def read_new(self, *, start: str = ">") -> list[Entry]:
        """Up to a batch per stream of entries never delivered to this group, or with
        start="0", this consumer's own unacknowledged ones."""
        if not self.streams:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in self.streams:
                pipe.xreadgroup(
                    self.group,
                    self.consumer,
                    {stream: start},
                    count=self.settings.worker_batch_size,
                )
            replies = await pipe.execute(raise_on_error=False)
        entries: list[Entry] = []
        for stream, reply in zip(self.streams, replies, strict=True):
            if isinstance(reply, ResponseError):
                await self.ensure_group(stream, reply)
                continue
            if isinstance(reply, Exception):
                # A node gone mid-pipeline (a cluster's failover): the loop waits for
                # Redis, then reads this consumer's pending entries again (resume).
                raise reply
            for _name, messages in reply or []:
                entries += [self.entry(stream, i, f) for i, f in messages if f]
        return entries

    async def ensure_group(self, stream: str, error: ResponseError) -> None:
        if "NOGROUP" not in str(error):
            raise error
        with contextlib.suppress(ResponseError):  # another worker created it first
            await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)

    async def reclaim_stale(self) -> list[Entry]:
        """Take over entries a dead (or failing) consumer left pending."""
        now = time.monotonic()
        idle_seconds = self.settings.worker_reclaim_idle_seconds
        if now - self._reclaimed_at < idle_seconds / 2:
            return []
        self._reclaimed_at = now
        entries: list[Entry] = []
        for stream in self.streams:
            try:
                reply = await self.redis.xautoclaim(
                    stream,
                    self.group,
                    self.consumer,
                    min_idle_time=int(idle_seconds * 1000),
                    start_id="0-0",
                    count=self.settings.worker_batch_size,
                )
            except ResponseError as error:
                await self.ensure_group(stream, error)
                continue
            claimed = [(i, f) for i, f in reply[1] if i is not None]
            # An entry deleted after its commit but before its ack (Redis 6.2 shape).
            gone = [i for i, f in claimed if not f]
            if gone:
                await self.redis.xack(stream, self.group, *gone)
            # Taken over, not failed: only a refusal of its data counts against an entry
            # (store_one_by_one), however often outages and restarts moved it around.
            entries += [
                self.entry(stream, i, f)
                for i, f in claimed
                if f and (stream, i) not in self._in_hand
            ]
        if entries:
            logger.warning("reclaimed %d order entries from dead consumers", len(entries))
        return entries

    async def store(self, entries: Sequence[Entry], stop: asyncio.Event) -> list[Entry]:
        """Write the batch in one transaction, retrying while Postgres is unreachable.
        Returns the entries now safely stored (to acknowledge)."""
        if not entries:
            return []
        delay = FIRST_RETRY_SECONDS
        while True:
            try:
                await self.commit([e.record for e in entries if e.record is not None])
                return list(entries)
            except Exception as exc:
                if is_data_error(exc):
                    logger.warning(
                        "batch of %d rejected (%s); storing one by one", len(entries), exc
                    )
                    return await self.store_one_by_one(entries)
                if stop.is_set():
                    # Not acknowledged: the entries stay pending for the next worker.
                    logger.warning("stopping with an unstored batch; it stays in the stream")
                    return []
                if delay == FIRST_RETRY_SECONDS:  # one line per outage, not per retry
                    logger.warning("Postgres unavailable (%s); retrying with backoff", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.worker_backoff_max_seconds)

    async def store_one_by_one(self, entries: Sequence[Entry]) -> list[Entry]:
        """The per-record fallback after a batch was refused: every good record is stored,
        each refused one counts a failure, and is dead-lettered at the limit."""
        stored: list[Entry] = []
        for entry in entries:
            assert entry.record is not None
            try:
                await self.commit([entry.record])
                stored.append(entry)
            except Exception as exc:
                if not is_data_error(exc):
                    # Postgres went away half way: the rest stays pending, and is
                    # reclaimed (or re-read by this consumer) once it is back.
                    logger.warning("Postgres unavailable (%s) while storing one by one", exc)
                    break
                await self.count_failure(entry, exc)
        return stored

    async def count_failure(self, entry: Entry, error: BaseException) -> None:
        """One more refusal of this entry's data; at `worker_max_failures` it goes to the
        dead letters, before that it stays pending and is retried after a takeover."""
        failures_key = self._source_of(entry.stream, [entry]).failures
        failures = int(await self.redis.hincrby(failures_key, entry.entry_id, 1))
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        logger.error(
            "entry %s %s (%s) refused by Postgres (%d of %d): %s",
            entry.stream,
            entry.entry_id,
            entry.record.id if entry.record is not None else "?",
            failures,
            self.settings.worker_max_failures,
            reason,
        )
        if failures >= self.settings.worker_max_failures:
            await self.dead_letter(entry, reason=f"refused {failures} times: {reason}"[:500])
            await self.redis.hdel(failures_key, entry.entry_id)

    async def commit(self, records: Sequence[Record]) -> None:
        orders = [r for r in records if isinstance(r, NewOrder)]
        claims = [r for r in records if isinstance(r, NewClaim)]
        places = [r for r in records if isinstance(r, NewPlace)]
        draws = [r for r in records if isinstance(r, NewDraw)]
        async with self.sessionmaker() as session, session.begin():
            inserted = await insert_orders(
                session, orders, payment_timeout_seconds=self.settings.payment_timeout_seconds
            )
            new_claims = await insert_claims(session, claims)
            new_places = await insert_places(session, places)
            new_draws = await insert_draws(session, draws)
        # Before the ack: a crash in between re-delivers them, and release.lua's
        # `released` set makes the second give-back a no-op.
        await self.give_back(inserted.key_reused)
        self.stored += inserted.new + new_claims + new_places + new_draws
        orders_written.inc(inserted.new)
        claims_written.inc(new_claims)
        places_written.inc(new_places)

    async def give_back(self, orders: Sequence[NewOrder]) -> None:
        """Units of orders Postgres refused as a second order under one Idempotency-Key
        go back to the sale (release.lua, once per order); the entries are then
        acknowledged like stored ones, never dead-lettered."""
        if not orders:
            return
        scripts = await self.scripts()
        for order in orders:
            reply = await run_release(
                scripts,
                release_script_call(
                    keys=ItemKeys(self.settings.redis_key_prefix, order.item_id),
                    order_id=order.id,
                    user_id=order.user_id,
                    quantity=order.quantity,
                    channel=self.keys.stock_back_channel,
                ),
            )
            outcome = reply.outcome.name.lower() if reply is not None else "?"
            logger.warning(
                "order %s repeats Idempotency-Key %r of a stored order of user %s on item "
                "%d (its Redis record was lost): not stored; %d unit(s) given back (%s)",
                order.id,
                order.idempotency_key,
                order.user_id,
                order.item_id,
                order.quantity,
                outcome,
            )
        orders_key_reused.inc(len(orders))

    async def acknowledge(self, entries: Sequence[Entry]) -> None:
        """After the commit: ack, delete the entries and their queued marks (stored.lua,
        one call per stream)."""
        if not entries:
            return
        by_stream: dict[str, list[Entry]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry)
        sources = {stream: self._source_of(stream, group) for stream, group in by_stream.items()}
        scripts = await self.scripts()
        await asyncio.gather(
            *(
                forget_stored(
                    self.redis,
                    scripts,
                    stream=stream,
                    queued=sources[stream].queued,
                    failures=sources[stream].failures,
                    group=self.group,
                    entry_ids=[e.entry_id for e in group],
                    record_ids=[e.record.id for e in group if e.record is not None],
                )
                for stream, group in by_stream.items()
            )
        )

    async def dead_letter(self, entry: Entry, *, reason: str) -> None:
        fields: dict[Any, Any] = {
            **entry.fields,
            "stream": entry.stream,
            "entry_id": entry.entry_id,
            "reason": reason,
        }
        # Not one transaction: the two keys may live on different cluster nodes. A crash
        # in between leaves the entry pending, so it is dead-lettered again, never lost.
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self.keys.dead_orders, fields)
            pipe.xack(entry.stream, self.group, entry.entry_id)
            await pipe.execute()
        orders_dead_lettered.inc()
        logger.error(
            "order entry %s %s (order %s) moved to %s: %s",
            entry.stream,
            entry.entry_id,
            entry.fields.get("order_id"),
            self.keys.dead_orders,
            reason,
        )

    # -- helpers --------------------------------------------------------------------

    async def scripts(self) -> Scripts:
        if self._scripts is None:
            self._scripts = await Scripts.load(self.redis)
        return self._scripts

    def entry(self, stream: str, entry_id: str, fields: dict[str, str]) -> Entry:
        source = self.sources.get(stream)
        record = source.parse(fields) if source is not None else parse_order(fields)
        return Entry(stream=stream, entry_id=entry_id, fields=fields, record=record)

    def _source_of(self, stream: str, entries: Sequence[Entry]) -> Source:
        source = self.sources.get(stream)
        if source is not None:
            return source
        # A stream dropped from the registry since it was read: find it from the record.
        first = entries[0].record
        prefix = self.settings.redis_key_prefix
        if isinstance(first, NewClaim):
            return Source.of_coupon(CouponKeys(prefix, first.coupon_id))
        if isinstance(first, NewPlace):
            return Source.of_queue(QueueKeys(prefix, first.event_id))
        if isinstance(first, NewDraw):
            return Source.of_lottery(LotteryKeys(prefix, first.lottery_id))
        assert first is not None
        return Source.of_item(ItemKeys(prefix, first.item_id))
