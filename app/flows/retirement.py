"""Retiring what ended sales leave behind, so Redis holds what live sales need and no
more: the order writer polls only live items' streams, and dead consumer names leave the
consumer groups.

Every `retire_check_seconds`, the worker takes the items of the writer's registry whose
sale ended more than `retire_after_seconds` ago and whose orders are settled in
Postgres (none unpaid, no stock return owed), runs retire.lua on each (which checks the
window and the stream itself, atomically, and keeps the sale hash: purchases still
answer `ended`, the audit still finds the stock) and drops it from the registry. A
warm-up never loads an ended sale again. Then, on every stream still polled, consumers
idle longer than `worker_dead_consumer_seconds` that own no pending entry are deleted
(a live one reading again is re-created by Redis)."""

import asyncio
import contextlib
import logging
from datetime import timedelta

from app.container import Container
from app.moments import utc_now
from app.orders import repository as orders
from app.outages import describe
from app.store.keys import ItemKeys
from app.store.retire import RetireOutcome, retire_sale

logger = logging.getLogger(__name__)


async def retire_ended_sales(services: Container) -> list[int]:
    """Retire every ended, settled sale of the registry; returns the items retired."""
    settings, redis = services.settings, services.redis
    registry = services.keys.items
    item_ids = [int(i) for i in await redis.smembers(registry)]
    async with services.sessionmaker() as session:
        settled = await orders.settled_ended_items(
            session,
            item_ids,
            ended_before=utc_now() - timedelta(seconds=settings.retire_after_seconds),
        )
    retired = []
    for item_id in settled:
        keys = ItemKeys(settings.redis_key_prefix, item_id)
        outcome = await retire_sale(redis, services.scripts, keys)
        if outcome in (RetireOutcome.RETIRED, RetireOutcome.NO_SUCH_ITEM):
            await redis.srem(registry, item_id)
            retired.append(item_id)
    if retired:
        logger.info("retired the hot keys of %d ended sale(s): %s", len(retired), retired)
    return retired


async def remove_dead_consumers(services: Container) -> int:
    """Delete consumers of the writer's group, on every polled item stream, that have
    been idle longer than `worker_dead_consumer_seconds` and own no pending entry."""
    settings, redis = services.settings, services.redis
    idle_ms = settings.worker_dead_consumer_seconds * 1000
    removed = 0
    for item_id in sorted(int(i) for i in await redis.smembers(services.keys.items)):
        stream = ItemKeys(settings.redis_key_prefix, item_id).orders
        try:
            consumers = await redis.xinfo_consumers(stream, settings.worker_group)
        except Exception:  # no stream or no group yet: nothing to clean
            continue
        for consumer in consumers:
            if int(consumer["pending"]) == 0 and int(consumer["idle"]) > idle_ms:
                removed += int(
                    await redis.xgroup_delconsumer(stream, settings.worker_group, consumer["name"])
                    == 0
                )
    if removed:
        logger.info("removed %d dead consumer(s) from the order streams' group", removed)
    return removed


class Retirement:
    """Runs both every `retire_check_seconds` in `seckill worker`."""

    def __init__(self, *, services: Container) -> None:
        self.services = services

    async def run(self, stop: asyncio.Event) -> None:
        failing = False
        while not stop.is_set():
            try:
                await retire_ended_sales(self.services)
                await remove_dead_consumers(self.services)
                failing = False
            except Exception as exc:  # Redis or Postgres away: the next pass tries again
                if not failing:
                    logger.warning("retiring ended sales failed (%s); retrying", describe(exc))
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.services.settings.retire_check_seconds)
