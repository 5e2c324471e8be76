"""The order writer: batches into Postgres exactly once, acks after commit, reclaims,
dead-letters what keeps failing."""

import asyncio
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.container import Container
from app.flows.writer import OrderWriter
from app.orders.models import OrderStatus
from app.store.keys import ItemKeys
from tests.support.factories import Auth, create_live_item
from tests.support.orders import (
    accept_orders,
    dead_letters,
    sold_ledger_rows,
    stored_order_ids,
)
from tests.support.waiting import eventually


def writer_for(services: Container, consumer: str = "writer-1", **overrides: object) -> OrderWriter:
    return OrderWriter(
        redis=services.redis,
        sessionmaker=services.sessionmaker,
        settings=services.settings.model_copy(update=overrides),
        consumer=consumer,
    )


async def test_drain_stores_every_order_once_and_cleans_up_redis(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=300, per_user_limit=1)
    accepted = await accept_orders(app_services, item.id, 250)
    writer = writer_for(app_services, worker_batch_size=100)

    assert await writer.drain() == 250

    assert set(await stored_order_ids(app_services)) == accepted
    assert await sold_ledger_rows(app_services) == 250
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    assert await app_services.redis.xlen(keys.orders) == 0
    assert await app_services.redis.hlen(keys.queued) == 0
    pending = await app_services.redis.xpending(keys.orders, app_services.settings.worker_group)
    assert pending["pending"] == 0
    some_order = next(iter(accepted))
    owner = (await app_services.redis.hget(keys.queued, some_order)) or ""
    assert owner == ""  # no longer queued: the stored row answers now
    stored = await client.get(f"/api/v1/orders/{some_order}", headers=auth.admin())
    assert stored.json()["status"] == OrderStatus.PENDING_PAYMENT


async def test_an_order_read_twice_is_stored_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=1)
    accepted = await accept_orders(app_services, item.id, 5)
    writer = writer_for(app_services)
    await writer.refresh_streams(force=True)
    batch = await writer.read_new()
    never = asyncio.Event()

    # As if the ack was lost after the commit and the batch came round again.
    await writer.store(batch, never)
    await writer.store(batch, never)
    await writer.acknowledge(batch)

    assert sorted(await stored_order_ids(app_services)) == sorted(accepted)
    assert await sold_ledger_rows(app_services) == 5


async def test_a_dead_consumers_orders_are_reclaimed(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=50, per_user_limit=1)
    accepted = await accept_orders(app_services, item.id, 40)
    dead = writer_for(app_services, consumer="dead-writer")
    await dead.refresh_streams(force=True)
    assert len(await dead.read_new()) == 40  # delivered, then the consumer "dies"

    survivor = writer_for(app_services, consumer="survivor", worker_reclaim_idle_seconds=0.2)
    await survivor.refresh_streams(force=True)
    assert await survivor.read_new() == []  # nothing new: all 40 sit with the dead one
    await asyncio.sleep(0.3)
    reclaimed = await survivor.reclaim_stale()
    assert len(reclaimed) == 40
    await survivor.process(reclaimed, asyncio.Event())

    assert set(await stored_order_ids(app_services)) == accepted
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    pending = await app_services.redis.xpending(keys.orders, app_services.settings.worker_group)
    assert pending["pending"] == 0


READABLE = {
    "order_id": "01JZZZZZZZZZZZZZZZZZZZZZZZ-1",
    "user_id": "u",
    "event_id": "1",
    "item_id": "1",
    "quantity": "1",
    "unit_price": "10.00",
    "accepted_ms": "1764930000123",
}


@pytest.mark.parametrize(
    "damage",
    [
        {"quantity": "many"},
        {"accepted_ms": "9" * 20},  # beyond any datetime: from_ms raises OverflowError
        {"accepted_ms": "-" + "9" * 20},
        {"unit_price": "NaN"},  # Postgres's numeric would store it
        {"unit_price": "Infinity"},
        {"event_id": "1e3"},
    ],
)
async def test_an_unreadable_entry_goes_to_the_dead_letter_stream(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, damage: dict[str, str]
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=1)
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    entry: dict[Any, Any] = {**READABLE, **damage}
    await app_services.redis.xadd(keys.orders, entry)
    accepted = await accept_orders(app_services, item.id, 3)

    await writer_for(app_services).drain()

    assert set(await stored_order_ids(app_services)) == accepted
    dead = await dead_letters(app_services)
    assert len(dead) == 1
    fields = dead[0]
    assert fields["reason"] == "unreadable entry"
    assert fields["stream"] == keys.orders
    assert {name: fields[name] for name in damage} == damage


@pytest.mark.parametrize("event", ["none", "another"])
async def test_an_entry_that_keeps_failing_is_dead_lettered_and_the_batch_goes_on(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, redis: Redis, event: str
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=1)
    other = await create_live_item(client, auth, sku="OTHER-1", stock=10)
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    accepted = await accept_orders(app_services, item.id, 3)
    # Readable, but Postgres refuses it (the foreign key of the item of its event): its
    # event does not exist, or exists but is not its item's event.
    poison: dict[Any, Any] = {
        "order_id": "01JZZZZZZZZZZZZZZZZZZZZZZZ-" + str(item.id),
        "user_id": "mallory",
        "item_id": str(item.id),
        "event_id": "999999" if event == "none" else str(other.event_id),
        "quantity": "1",
        "unit_price": "1.00",
        "accepted_ms": "1700000000000",
        "idempotency_key": "",
    }
    await redis.xadd(keys.orders, poison)
    writer = writer_for(app_services, worker_max_failures=2, worker_reclaim_idle_seconds=0.05)

    await writer.drain()  # the good orders land, one by one after the batch failed
    assert set(await stored_order_ids(app_services)) == accepted
    for _ in range(4):  # redelivered until it has failed too often
        await asyncio.sleep(0.1)
        if batch := await writer.reclaim_stale():
            await writer.process(batch, asyncio.Event())

    dead = await dead_letters(app_services)
    assert [fields["order_id"] for fields in dead] == [poison["order_id"]]
    assert dead[0]["reason"].startswith("refused 2 times: IntegrityError")
    pending = await redis.xpending(keys.orders, app_services.settings.worker_group)
    assert pending["pending"] == 0
    assert set(await stored_order_ids(app_services)) == accepted


async def test_several_writers_share_the_streams_and_store_each_order_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    items = [await create_live_item(client, auth, sku=f"SKU-{n}", stock=1500) for n in range(2)]
    accepted: set[str] = set()
    for item in items:
        accepted |= await accept_orders(app_services, item.id, 1500)
    writers = [writer_for(app_services, f"writer-{n}", worker_batch_size=100) for n in range(3)]
    stop = asyncio.Event()
    running = [asyncio.create_task(w.run(stop)) for w in writers]

    async def all_stored() -> bool:
        return len(await stored_order_ids(app_services)) >= len(accepted)

    try:
        await eventually(all_stored)
    finally:
        stop.set()
        await asyncio.gather(*running)

    stored = await stored_order_ids(app_services)
    assert len(stored) == len(set(stored)) == 3000
    assert set(stored) == accepted
    assert await sold_ledger_rows(app_services) == 3000
    assert sum(w.stored for w in writers) == 3000
    assert sum(w.stored > 0 for w in writers) >= 2, "the group spreads the work"
