"""The order writer: moves accepted orders from the item streams into Postgres.

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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.metrics import orders_dead_lettered, orders_written
from app.orders.repository import NewOrder, insert_orders
from app.seckill.keys import GlobalKeys, ItemKeys

logger = logging.getLogger(__name__)

# Errors about the data itself: retrying the same entry will fail the same way.
DATA_ERRORS = (IntegrityError, DataError, ProgrammingError)


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry: where it sits, and the order it carries (None if unreadable)."""

    stream: str
    entry_id: str
    fields: dict[str, str]
    order: NewOrder | None


def parse_order(fields: dict[str, str]) -> NewOrder | None:
    try:
        return NewOrder(
            id=fields["order_id"],
            user_id=fields["user_id"],
            event_id=int(fields["event_id"]),
            item_id=int(fields["item_id"]),
            quantity=int(fields["quantity"]),
            unit_price=Decimal(fields["unit_price"]),
            accepted_at=datetime.fromtimestamp(int(fields["accepted_ms"]) / 1000, UTC),
            idempotency_key=fields.get("idempotency_key") or None,
        )
    except (KeyError, ValueError, InvalidOperation):
        return None


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class OrderWriter:
    def __init__(
        self,
        *,
        redis: Redis,
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
        self.streams: list[str] = []
        self._streams_read_at = 0.0
        self._reclaimed_at = 0.0
        self.stored = 0

    # -- the loop -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        logger.info("order writer %s started (group %s)", self.consumer, self.group)
        await self.refresh_streams(force=True)
        # A restarted consumer of the same name first finishes what it had been given.
        if own := await self.read_new(start="0"):
            await self.process(own, stop)
        while not stop.is_set():
            await self.refresh_streams()
            batch = await self.reclaim_stale() or await self.read_new()
            if not batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.worker_idle_sleep_seconds)
                continue
            # A batch in hand is finished even if asked to stop: that is the drain.
            await self.process(batch, stop)
        logger.info("order writer %s stopped after storing %d orders", self.consumer, self.stored)

    async def drain(self) -> int:
        """Store everything currently in the streams, then return (tests, benchmarks)."""
        never = asyncio.Event()
        total = 0
        await self.refresh_streams(force=True)
        for start in ("0", ">"):
            while batch := await self.read_new(start=start):
                stored = await self.process(batch, never)
                total += stored
                if start == "0" and stored == 0:
                    break  # only entries that keep failing are left; reclaim handles them
        return total

    async def process(self, batch: Sequence[Entry], stop: asyncio.Event) -> int:
        readable = [e for e in batch if e.order is not None]
        for entry in batch:
            if entry.order is None:
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
        item_ids = sorted(int(i) for i in await self.redis.smembers(self.keys.items))
        self.streams = [ItemKeys(self.settings.redis_key_prefix, i).orders for i in item_ids]
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
            for _name, messages in reply or []:
                entries += [self.entry(stream, i, f) for i, f in messages if f]
        return entries

    async def ensure_group(self, stream: str, error: ResponseError) -> None:
        if "NOGROUP" not in str(error):
            raise error
        with contextlib.suppress(ResponseError):  # another worker created it first
            await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)

    async def reclaim_stale(self) -> list[Entry]:
        """Take over entries a dead consumer left pending; dead-letter the ones that
        were delivered too often."""
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
            entries += await self.retire_poisoned(stream, [(i, f) for i, f in claimed if f])
        if entries:
            logger.warning("reclaimed %d order entries from dead consumers", len(entries))
        return entries

    async def retire_poisoned(
        self, stream: str, claimed: list[tuple[str, dict[str, str]]]
    ) -> list[Entry]:
        if not claimed:
            return []
        pending = await self.redis.xpending_range(
            stream, self.group, min=claimed[0][0], max=claimed[-1][0], count=len(claimed) * 2,
            consumername=self.consumer,
        )  # fmt: skip
        deliveries = {p["message_id"]: int(p["times_delivered"]) for p in pending}
        kept: list[Entry] = []
        for entry_id, fields in claimed:
            entry = self.entry(stream, entry_id, fields)
            if deliveries.get(entry_id, 0) > self.settings.worker_max_deliveries:
                await self.dead_letter(entry, reason="failed too many times")
            else:
                kept.append(entry)
        return kept

    async def store(self, entries: Sequence[Entry], stop: asyncio.Event) -> list[Entry]:
        """Write the batch in one transaction, retrying while Postgres is unreachable.
        Returns the entries now safely stored (to acknowledge)."""
        if not entries:
            return []
        delay = 0.1
        while True:
            try:
                await self.commit([e.order for e in entries if e.order is not None])
                return list(entries)
            except DATA_ERRORS:
                logger.exception("batch of %d rejected; storing one by one", len(entries))
                return await self.store_one_by_one(entries)
            except Exception as exc:
                if stop.is_set():
                    # Not acknowledged: the entries stay pending for the next worker.
                    logger.warning("stopping with an unstored batch; it stays in the stream")
                    return []
                logger.warning("Postgres unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.worker_backoff_max_seconds)

    async def store_one_by_one(self, entries: Sequence[Entry]) -> list[Entry]:
        stored: list[Entry] = []
        for entry in entries:
            assert entry.order is not None
            try:
                await self.commit([entry.order])
                stored.append(entry)
            except DATA_ERRORS:
                # Left pending: reclaimed and retried later, dead-lettered if it keeps failing.
                logger.exception("order entry %s %s failed", entry.stream, entry.entry_id)
        return stored

    async def commit(self, orders: Sequence[NewOrder]) -> None:
        async with self.sessionmaker() as session, session.begin():
            new = await insert_orders(
                session, orders, payment_timeout_seconds=self.settings.payment_timeout_seconds
            )
        self.stored += new
        orders_written.inc(new)

    async def acknowledge(self, entries: Sequence[Entry]) -> None:
        """After the commit: ack, delete the entries and their queued marks."""
        if not entries:
            return
        by_stream: dict[str, list[Entry]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, group in by_stream.items():
                ids = [e.entry_id for e in group]
                pipe.xack(stream, self.group, *ids)
                pipe.xdel(stream, *ids)
                queued = ItemKeys(self.settings.redis_key_prefix, self._item_of(group)).queued
                pipe.hdel(queued, *[e.order.id for e in group if e.order is not None])
            await pipe.execute()

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

    @staticmethod
    def entry(stream: str, entry_id: str, fields: dict[str, str]) -> Entry:
        return Entry(stream=stream, entry_id=entry_id, fields=fields, order=parse_order(fields))

    @staticmethod
    def _item_of(entries: Sequence[Entry]) -> int:
        first = entries[0].order
        assert first is not None
        return first.item_id
