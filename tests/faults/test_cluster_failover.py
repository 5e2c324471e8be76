"""A Redis Cluster master killed mid-crowd: its replica takes over, and with replicated
acceptance on, every order a client was told 202 is stored exactly once, nothing is
oversold and nobody is over the limit. The worker runs through the failover."""

import asyncio
import random
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.container import Container
from app.processes.api import create_app
from app.store.keys import ItemKeys
from tests.faults.books import assert_books_balance, retry_until_answered
from tests.support.factories import Auth, create_live_item
from tests.support.orders import stored_order_ids
from tests.support.processes import start_cli
from tests.support.redis_cluster import LocalCluster, redis_cluster
from tests.support.redis_servers import RedisServer
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults, pytest.mark.slow]
STOCK = 120
USERS = 160


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    async with redis_cluster(tmp_path / "cluster") as running:
        yield running


@pytest.fixture
def cluster_settings(settings: Settings, cluster: LocalCluster) -> Settings:
    return settings.model_copy(
        update={
            "redis_url": cluster.url,
            "redis_cluster": True,
            "redis_min_replica_acks": 1,
            "redis_replica_ack_timeout_ms": 500,
            "redis_socket_timeout_seconds": 1.0,
            "redis_breaker_open_seconds": 0.2,
            "worker_backoff_max_seconds": 0.5,
        }
    )


@pytest.fixture
async def cluster_app(cluster_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(cluster_settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def cclient(cluster_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=cluster_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://seckill.test") as c:
        yield c


async def replaced(cluster: LocalCluster, victim: RedisServer, key: str) -> bool:
    """Another node serves `key` now."""
    try:
        return await cluster.master_of(key) is not victim
    except AssertionError:  # not yet: nobody serves it
        return False


async def test_a_master_killed_mid_crowd_loses_no_accepted_order(
    cclient: httpx.AsyncClient,
    auth: Auth,
    cluster_app: FastAPI,
    cluster_settings: Settings,
    cluster: LocalCluster,
    tmp_path: Path,
) -> None:
    services: Container = cluster_app.state.container
    item = await create_live_item(cclient, auth, stock=STOCK, per_user_limit=1)
    keys = ItemKeys(cluster_settings.redis_key_prefix, item.id)
    victim = await cluster.master_of(keys.sale)
    log = tmp_path / "worker.log"
    worker = await start_cli(cluster_settings, "worker", log=log)
    rng = random.Random(11)
    told: dict[str, httpx.Response] = {}
    try:

        async def shopper(user: str) -> None:
            await asyncio.sleep(rng.random() * 3.0)
            told[user] = await retry_until_answered(
                cclient, auth, item.id, user_id=user, idempotency_key=f"key-{user}"
            )

        crowd = asyncio.gather(*(shopper(f"u{n}") for n in range(USERS)))

        async def some_accepted() -> bool:
            return len(told) >= 20

        await eventually(some_accepted)
        await victim.stop(signal.SIGKILL)  # no persistence: its data is gone with it
        answered_before = len(told)
        # Its replica takes over with no replica of its own, so it refuses purchases
        # (503: nothing it accepts could survive it) until one attaches: the victim,
        # restarted empty once replaced, rejoins as the new master's replica.
        await eventually(lambda: replaced(cluster, victim, keys.sale))
        await victim.start()
        await crowd
        assert answered_before < STOCK, "killed too late to prove anything"
        assert victim not in await cluster.masters()

        accepted = {u: r.json()["order_id"] for u, r in told.items() if r.status_code == 202}
        refused = {u: r.json()["code"] for u, r in told.items() if r.status_code != 202}
        assert set(refused.values()) <= {"sold_out"}, refused
        assert len(accepted) == STOCK

        async def all_stored() -> bool:
            return len(await stored_order_ids(services)) >= len(accepted)

        await eventually(all_stored)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = await worker.wait()
    output = log.read_text()
    assert code == 0, output
    assert "Traceback" not in output, output
    await assert_books_balance(services, item.id, allocated=STOCK, accepted=accepted)
