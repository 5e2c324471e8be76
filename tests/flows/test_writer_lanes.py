"""The order writer's lanes: several batches stored at once, each acknowledged after its
own commit; an entry a lane holds is never taken back by the same writer, and stopping
finishes the batches in hand."""

import asyncio
from collections import Counter
from collections.abc import Sequence

import httpx

from app.container import Container
from app.flows.writer import Entry, OrderWriter
from app.store.keys import ItemKeys
from tests.support.factories import Auth, create_live_item
from tests.support.orders import accept_orders, sold_ledger_rows, stored_order_ids
from tests.support.waiting import eventually


class CountingWriter(OrderWriter):
    """Counts every entry handed to a lane (twice if it ever were)."""

    handed: Counter[str]

    async def process(self, batch: Sequence[Entry], stop: asyncio.Event) -> int:
        self.handed.update(entry.entry_id for entry in batch)
        return await super().process(batch, stop)


def counting_writer(services: Container, consumer: str, **overrides: object) -> CountingWriter:
    writer = CountingWriter(
        redis=services.redis,
        sessionmaker=services.sessionmaker,
        settings=services.settings.model_copy(update=overrides),
        consumer=consumer,
    )
    writer.handed = Counter()
    return writer


async def test_lanes_store_every_order_once_while_orders_keep_coming(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    items = [
        await create_live_item(client, auth, sku=f"LANES-{n}", stock=400, per_user_limit=1)
        for n in range(3)
    ]
    # Reclaiming on every pass, with entries idle for 1 ms: if the writer took back what
    # its own lanes hold, entries would be handed over twice.
    writer = counting_writer(
        app_services,
        "lanes-1",
        worker_lanes=3,
        worker_batch_size=40,
        worker_reclaim_idle_seconds=0.001,
        worker_registry_refresh_seconds=0.01,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(writer.run(stop))
    accepted: set[str] = set()
    for wave in range(3):
        for item in items:
            accepted |= await accept_orders(app_services, item.id, 100, first_user=wave * 100)

    async def all_stored() -> bool:
        return len(await stored_order_ids(app_services)) == len(accepted)

    await eventually(all_stored, within=30)
    stop.set()
    await asyncio.wait_for(running, 10)

    assert set(await stored_order_ids(app_services)) == accepted
    assert await sold_ledger_rows(app_services) == len(accepted) == 900
    assert sum(writer.handed.values()) == 900
    assert max(writer.handed.values()) == 1
    for item in items:
        keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
        assert await app_services.redis.xlen(keys.orders) == 0
        assert await app_services.redis.hlen(keys.queued) == 0


async def test_two_writers_with_lanes_store_each_order_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    items = [
        await create_live_item(client, auth, sku=f"TWO-{n}", stock=600, per_user_limit=1)
        for n in range(2)
    ]
    accepted: set[str] = set()
    for item in items:
        accepted |= await accept_orders(app_services, item.id, 600)
    writers = [
        counting_writer(app_services, f"lanes-{n}", worker_lanes=4, worker_batch_size=25)
        for n in range(2)
    ]

    stored = await asyncio.gather(*(writer.drain() for writer in writers))

    assert len(accepted) == 1200
    assert sum(stored) == 1200
    assert set(await stored_order_ids(app_services)) == accepted
    assert await sold_ledger_rows(app_services) == 1200
    assert sum(sum(w.handed.values()) for w in writers) == 1200  # nothing read twice


async def test_stopping_finishes_the_batches_in_hand(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=500, per_user_limit=1)
    accepted = await accept_orders(app_services, item.id, 500)
    writer = counting_writer(app_services, "lanes-stop", worker_lanes=4, worker_batch_size=50)
    stop = asyncio.Event()
    running = asyncio.create_task(writer.run(stop))

    async def some_handed() -> bool:
        return sum(writer.handed.values()) > 0

    await eventually(some_handed)
    stop.set()
    await asyncio.wait_for(running, 10)

    # Every entry handed to a lane is stored and acknowledged; the rest wait unread.
    handed = sum(writer.handed.values())
    assert len(await stored_order_ids(app_services)) == handed
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    pending = await app_services.redis.xpending(keys.orders, app_services.settings.worker_group)
    assert pending["pending"] == 0
    assert await app_services.redis.xlen(keys.orders) == len(accepted) - handed
