"""SECKILL_REDIS_MIN_REPLICA_ACKS: a 202 means the order is on a replica too, so losing
the primary (no persistence at all, killed mid-crowd) loses no accepted order; a replica
that does not confirm in time gets the client a 503, and its retry the first answer."""

import asyncio
import contextlib
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
from app.store.acks import ack_policy, confirm_replicated
from app.store.keys import ItemKeys
from tests.faults.books import assert_books_balance, retry_until_answered
from tests.support.factories import Auth, assert_problem, buy, create_live_item
from tests.support.proxy import CuttableProxy
from tests.support.redis_servers import VOLATILE, RedisServer, redis_server
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults]


async def replica_of(primary: RedisServer, directory: Path) -> RedisServer:
    replica = RedisServer(
        directory, args=(*VOLATILE, "--replicaof", "127.0.0.1", str(primary.port))
    )
    await replica.start()
    await until_in_sync(replica)
    return replica


async def until_in_sync(replica: RedisServer) -> None:
    client = replica.client()

    async def linked() -> bool:
        info = await client.info("replication")
        return info.get("master_link_status") == "up"

    try:
        await eventually(linked, within=30)
    finally:
        await client.aclose()


@pytest.fixture
async def primary(tmp_path: Path) -> AsyncIterator[RedisServer]:
    async with redis_server(tmp_path / "primary", args=VOLATILE) as server:
        yield server


@pytest.fixture
async def proxy(primary: RedisServer) -> AsyncIterator[CuttableProxy]:
    """The app reaches Redis through this; a failover re-points it at the replica."""
    through = CuttableProxy("127.0.0.1", primary.port)
    await through.open()
    yield through
    await through.cut()


@pytest.fixture
def replicated_settings(settings: Settings, proxy: CuttableProxy) -> Settings:
    return settings.model_copy(
        update={
            "redis_url": f"redis://127.0.0.1:{proxy.port}/0",
            "redis_min_replica_acks": 1,
            # Room for a loaded CI machine: a replica's ack is late there, not lost.
            "redis_replica_ack_timeout_ms": 1000,
            "redis_socket_timeout_seconds": 3.0,
            "redis_breaker_open_seconds": 0.2,
        }
    )


@pytest.fixture
async def replicated_app(replicated_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(replicated_settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def rclient(replicated_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=replicated_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://seckill.test") as c:
        yield c


@pytest.fixture
def rservices(replicated_app: FastAPI) -> Container:
    services: Container = replicated_app.state.container
    return services


async def test_an_accepted_order_is_on_the_replica_when_the_client_hears_202(
    rclient: httpx.AsyncClient,
    auth: Auth,
    rservices: Container,
    primary: RedisServer,
    tmp_path: Path,
) -> None:
    replica = await replica_of(primary, tmp_path / "replica")
    try:
        item = await create_live_item(rclient, auth, stock=10, per_user_limit=1)
        answer = await buy(rclient, auth, item.id, idempotency_key="k")
        assert answer.status_code == 202, answer.text
        keys = ItemKeys(rservices.settings.redis_key_prefix, item.id)
        on_replica = replica.client()
        try:
            queued = await on_replica.hkeys(keys.queued)
        finally:
            await on_replica.aclose()
        assert answer.json()["order_id"] in queued  # no waiting: WAIT already did
    finally:
        replica.kill_now()


async def test_without_a_replica_a_purchase_answers_503_and_its_retry_the_first_order(
    rclient: httpx.AsyncClient,
    auth: Auth,
    rservices: Container,
    primary: RedisServer,
    tmp_path: Path,
) -> None:
    item = await create_live_item(rclient, auth, stock=10, per_user_limit=1)
    first = await buy(rclient, auth, item.id, idempotency_key="k")
    assert_problem(first, 503, "recovering")
    keys = ItemKeys(rservices.settings.redis_key_prefix, item.id)
    [taken] = [str(k) for k in await rservices.redis.hkeys(keys.queued)]  # the primary has it
    again = await buy(rclient, auth, item.id, idempotency_key="k")
    assert_problem(again, 503, "recovering")  # still not replicated: not told "accepted"

    replica = await replica_of(primary, tmp_path / "replica")
    try:
        answer = await retry_until_answered(
            rclient, auth, item.id, user_id="shopper-1", idempotency_key="k"
        )
    finally:
        replica.kill_now()
    assert answer.status_code == 202
    assert answer.json()["order_id"] == taken
    await assert_books_balance(rservices, item.id, allocated=10, accepted={"shopper-1": taken})


async def test_losing_the_primary_mid_crowd_loses_no_accepted_order(
    rclient: httpx.AsyncClient,
    auth: Auth,
    rservices: Container,
    primary: RedisServer,
    proxy: CuttableProxy,
    tmp_path: Path,
) -> None:
    """The primary has no persistence and is SIGKILLed mid-crowd; the replica is
    promoted and gets a replica of its own. Every order a client was told 202 is on it
    and gets stored, exactly once; clients that got 503 retry with their key."""
    replica = await replica_of(primary, tmp_path / "replica")
    spare: RedisServer | None = None
    try:
        stock, users = 150, [f"u{n}" for n in range(200)]
        item = await create_live_item(rclient, auth, stock=stock, per_user_limit=1)
        rng = random.Random(8)
        told: dict[str, httpx.Response] = {}

        async def shopper(user: str) -> None:
            await asyncio.sleep(rng.random() * 2.0)
            told[user] = await retry_until_answered(
                rclient, auth, item.id, user_id=user, idempotency_key=f"key-{user}"
            )

        crowd = asyncio.gather(*(shopper(u) for u in users))

        async def some_accepted() -> bool:
            return len(told) >= 30

        await eventually(some_accepted)
        await primary.stop(signal.SIGKILL)
        answered_before = len(told)
        await proxy.cut()
        await replica.command("REPLICAOF", "NO", "ONE")
        proxy.target = ("127.0.0.1", replica.port)
        await proxy.open()
        spare = await replica_of(replica, tmp_path / "spare")
        await crowd
        assert answered_before < stock, "killed too late to prove anything"

        accepted = {u: r.json()["order_id"] for u, r in told.items() if r.status_code == 202}
        refused = {u: r.json()["code"] for u, r in told.items() if r.status_code != 202}
        assert set(refused.values()) <= {"sold_out"}, refused
        assert len(accepted) == stock
        await assert_books_balance(rservices, item.id, allocated=stock, accepted=accepted)
    finally:
        replica.kill_now()
        if spare is not None:
            spare.kill_now()


@contextlib.asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://seckill.test") as c:
            yield c, application.state.container


@pytest.mark.parametrize("thin", [True, False], ids=["thin route", "framework route"])
async def test_a_replay_from_the_sold_out_mark_is_202_only_once_a_replica_has_the_order(
    replicated_settings: Settings,
    auth: Auth,
    primary: RedisServer,
    proxy: CuttableProxy,
    tmp_path: Path,
    thin: bool,
) -> None:
    """The replica's link is cut when the last unit is bought: its buyer hears 503, and
    so does the retry, although this process now answers the item from its sold-out mark.
    The primary is lost and the cut-off replica promoted: the order is gone there, and
    the retry is decided afresh; the unit is sold once, to the one who was told 202."""
    link = CuttableProxy("127.0.0.1", primary.port)
    await link.open()
    replica = RedisServer(
        tmp_path / "replica", args=(*VOLATILE, "--replicaof", "127.0.0.1", str(link.port))
    )
    spare: RedisServer | None = None
    try:
        await replica.start()
        await until_in_sync(replica)
        async with app_client(
            replicated_settings.model_copy(update={"thin_purchase_route": thin})
        ) as (client, services):
            item = await create_live_item(client, auth, stock=1, per_user_limit=1)
            await link.cut()
            first = await buy(client, auth, item.id, idempotency_key="k")
            assert_problem(first, 503, "recovering")
            assert services.sold_out.is_sold_out(item.id)  # the retry is answered from it
            again = await buy(client, auth, item.id, idempotency_key="k")
            assert_problem(again, 503, "recovering")
            other = await buy(client, auth, item.id, user_id="shopper-2", idempotency_key="k")
            assert_problem(other, 409, "sold_out")

            await primary.stop(signal.SIGKILL)
            await proxy.cut()
            await replica.command("REPLICAOF", "NO", "ONE")
            proxy.target = ("127.0.0.1", replica.port)
            await proxy.open()
            spare = await replica_of(replica, tmp_path / "spare")

            async def mark_gone() -> bool:  # it was the lost primary's word
                return not services.sold_out.is_sold_out(item.id)

            await eventually(mark_gone)
            answer = await retry_until_answered(
                client, auth, item.id, user_id="shopper-1", idempotency_key="k"
            )
            assert answer.status_code == 202, answer.text
            late = await buy(client, auth, item.id, user_id="shopper-3", idempotency_key="k")
            assert late.status_code in (409, 503), late.text
            await assert_books_balance(
                services, item.id, allocated=1, accepted={"shopper-1": answer.json()["order_id"]}
            )
    finally:
        await link.cut()
        replica.kill_now()
        if spare is not None:
            spare.kill_now()


async def test_a_replay_is_confirmed_only_by_a_server_that_has_its_order(
    rclient: httpx.AsyncClient,
    auth: Auth,
    rservices: Container,
    primary: RedisServer,
    tmp_path: Path,
) -> None:
    """The replicas of a server that lacks the record (a primary that replaced the one
    the replay was read from) do not confirm it, however many there are."""
    replica = await replica_of(primary, tmp_path / "replica")
    try:
        item = await create_live_item(rclient, auth, stock=10, per_user_limit=1)
        answer = await buy(rclient, auth, item.id, idempotency_key="k")
        assert answer.status_code == 202, answer.text
        order_id = answer.json()["order_id"]
        keys = ItemKeys(rservices.settings.redis_key_prefix, item.id)
        record = keys.idempotency("shopper-1", "k")
        policy = rservices.acks
        assert policy is not None

        async def confirmed(record: str, order_id: str) -> bool:
            return await confirm_replicated(
                redis=rservices.redis, policy=policy, keys=keys, record=record, order_id=order_id
            )

        assert await confirmed(record, order_id)
        assert not await confirmed(keys.idempotency("shopper-1", "other"), order_id)
        assert not await confirmed(record, f"{order_id}0")
    finally:
        replica.kill_now()


async def test_the_ack_policy_uses_wait_where_the_server_has_no_waitaof(
    settings: Settings, any_redis: object
) -> None:
    from redis.asyncio import Redis

    assert isinstance(any_redis, Redis)
    assert await ack_policy(any_redis, settings) is None  # off by default
    policy = await ack_policy(any_redis, settings.model_copy(update={"redis_min_replica_acks": 2}))
    assert policy is not None
    assert policy.replicas == 2
    info = await any_redis.info("server")
    has_waitaof = tuple(int(p) for p in info["redis_version"].split(".")[:2]) >= (7, 2)
    assert policy.waitaof is has_waitaof
