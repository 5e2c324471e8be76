"""The order writer under faults: a worker killed mid-batch, Postgres going away."""

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from app.container import Container
from app.db import create_engine, create_sessionmaker
from app.flows.writer import OrderWriter
from app.store.keys import ItemKeys
from tests.support.factories import Auth, create_live_item
from tests.support.orders import accept_orders, sold_ledger_rows, stored_order_ids
from tests.support.processes import start_cli
from tests.support.proxy import postgres_proxy
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults, pytest.mark.slow]
ORDERS = 4000


async def until_stored(services: Container, count: int) -> None:
    async def stored_all() -> bool:
        return len(await stored_order_ids(services)) >= count

    await eventually(stored_all)


async def test_a_worker_killed_mid_batch_loses_and_repeats_nothing(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, tmp_path: Path
) -> None:
    item = await create_live_item(client, auth, stock=ORDERS, per_user_limit=1)
    accepted = await accept_orders(app_services, item.id, ORDERS)
    settings = app_services.settings.model_copy(
        update={"worker_batch_size": 50, "worker_reclaim_idle_seconds": 1.0}
    )

    first = await start_cli(
        settings.model_copy(update={"worker_consumer": "doomed"}), "worker", log=tmp_path / "w1"
    )

    async def some_stored() -> bool:
        return bool(await stored_order_ids(app_services))

    await eventually(some_stored)
    first.send_signal(signal.SIGKILL)
    await first.wait()
    stored_at_kill = len(await stored_order_ids(app_services))
    assert stored_at_kill < ORDERS, "killed too late to prove anything"

    second = await start_cli(
        settings.model_copy(update={"worker_consumer": "heir"}), "worker", log=tmp_path / "w2"
    )
    try:
        await until_stored(app_services, ORDERS)
        keys = ItemKeys(settings.redis_key_prefix, item.id)

        async def nothing_pending() -> bool:  # the heir reclaimed and acked the rest
            pending = await app_services.redis.xpending(keys.orders, settings.worker_group)
            return int(pending["pending"]) == 0

        await eventually(nothing_pending)
    finally:
        second.send_signal(signal.SIGTERM)
        assert await second.wait() == 0, (tmp_path / "w2").read_text()

    stored = await stored_order_ids(app_services)
    assert len(stored) == len(set(stored)) == ORDERS
    assert set(stored) == accepted
    assert await sold_ledger_rows(app_services) == ORDERS
    assert await app_services.redis.hlen(keys.queued) == 0


async def test_orders_wait_in_the_stream_while_postgres_is_away(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    settings = app_services.settings
    item = await create_live_item(client, auth, stock=10_000, per_user_limit=1)
    assert settings.database_url
    proxy, through_proxy = await postgres_proxy(settings.database_url)
    engine = create_engine(settings, through_proxy)
    writer = OrderWriter(
        redis=app_services.redis,
        sessionmaker=create_sessionmaker(engine),
        settings=settings.model_copy(update={"worker_backoff_max_seconds": 0.5}),
        consumer="through-proxy",
    )
    stop = asyncio.Event()
    running = asyncio.create_task(writer.run(stop))
    accepted: set[str] = set()
    try:
        accepted |= await accept_orders(app_services, item.id, 300)
        await until_stored(app_services, 300)

        await proxy.cut()  # Postgres is unreachable for the writer from here
        for wave in range(5):
            accepted |= await accept_orders(
                app_services, item.id, 200, first_user=1000 + 200 * wave
            )
            await asyncio.sleep(0.5)
        assert len(await stored_order_ids(app_services)) == 300, "nothing lands while away"
        assert not running.done(), "the writer waits, it does not give up"

        await proxy.open()  # Postgres is back
        await until_stored(app_services, len(accepted))
    finally:
        stop.set()
        await running
        await engine.dispose()
        await proxy.cut()

    stored = await stored_order_ids(app_services)
    assert len(stored) == len(set(stored)) == len(accepted) == 1300
    assert set(stored) == accepted
    assert await sold_ledger_rows(app_services) == 1300
