"""Riding through Redis outages: a Redis that stops, restarts or stalls answers purchases
503 `recovering` (never 500), a retry with the same Idempotency-Key gets the first
answer, the worker stays up, and afterwards every accepted order is stored exactly once."""

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.config import Settings
from app.container import Container
from app.embedded import embedded_redis
from app.outages import BreakerState
from app.processes.api import create_app
from app.store.keys import ItemKeys
from tests.faults.books import assert_books_balance, retry_until_answered
from tests.support.factories import Auth, assert_problem, buy, create_live_item
from tests.support.orders import stored_order_ids
from tests.support.outages import closed_port
from tests.support.processes import start_cli
from tests.support.redis_servers import VOLATILE, RedisServer, redis_server
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults]


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info]


async def test_purchases_answer_503_while_redis_is_down_and_resume_when_it_is_back(
    own_client: httpx.AsyncClient,
    auth: Auth,
    own_services: Container,
    own_redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    item = await create_live_item(own_client, auth, stock=50, per_user_limit=1)
    accepted: dict[str, str] = {}
    for n in range(5):
        answer = await buy(own_client, auth, item.id, user_id=f"u{n}", idempotency_key="k")
        assert answer.status_code == 202
        accepted[f"u{n}"] = answer.json()["order_id"]

    await own_redis.stop()
    caplog.set_level(logging.INFO, logger="app")
    caplog.clear()
    for n in range(5, 25):
        answer = await buy(own_client, auth, item.id, user_id=f"u{n}", idempotency_key="k")
        body = assert_problem(answer, 503, "recovering")
        assert int(answer.headers["Retry-After"]) >= 1
        assert "Idempotency-Key" in body["detail"]
    assert not tracebacks(caplog), "an outage is one log line, not a traceback per request"
    went_down = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(went_down) == 1, [r.getMessage() for r in caplog.records]

    await own_redis.start()
    for n in range(5, 25):
        answer = await retry_until_answered(
            own_client, auth, item.id, user_id=f"u{n}", idempotency_key="k"
        )
        assert answer.status_code == 202, answer.text
        accepted[f"u{n}"] = answer.json()["order_id"]
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    await assert_books_balance(own_services, item.id, allocated=50, accepted=accepted)


async def test_a_stalled_redis_answers_503_and_a_retry_gets_the_first_answer(
    own_client: httpx.AsyncClient,
    auth: Auth,
    own_services: Container,
    own_redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """DEBUG SLEEP: purchases time out after the socket timeout; some of them did go
    through once Redis woke. Clients retrying with their Idempotency-Key are told the
    order that was taken, and nobody's unit is taken twice."""
    users = [f"u{n}" for n in range(40)]
    item = await create_live_item(own_client, auth, stock=1000, per_user_limit=1)
    stall = asyncio.create_task(own_redis.command("DEBUG", "SLEEP", "2"))
    await asyncio.sleep(0.1)  # the stall has begun (it lasts 2 s; the timeout is 0.5 s)
    first = await asyncio.gather(
        *(buy(own_client, auth, item.id, user_id=u, idempotency_key="k") for u in users)
    )
    await stall
    statuses = {r.status_code for r in first}
    assert statuses <= {202, 503}, [r.text for r in first if r.status_code not in (202, 503)]
    assert 503 in statuses
    assert not tracebacks(caplog)

    accepted: dict[str, str] = {}
    for user, answer in zip(users, first, strict=True):
        if answer.status_code == 503:
            answer = await retry_until_answered(
                own_client, auth, item.id, user_id=user, idempotency_key="k"
            )
        assert answer.status_code == 202, answer.text
        accepted[user] = answer.json()["order_id"]
    await assert_books_balance(own_services, item.id, allocated=1000, accepted=accepted)


async def test_the_worker_stays_up_through_a_redis_restart(
    own_client: httpx.AsyncClient,
    auth: Auth,
    own_services: Container,
    own_settings: Settings,
    own_redis: RedisServer,
    tmp_path: Path,
) -> None:
    item = await create_live_item(own_client, auth, stock=100, per_user_limit=1)
    log = tmp_path / "worker.log"
    worker = await start_cli(own_settings, "worker", log=log)
    accepted: dict[str, str] = {}
    try:
        for n in range(20):
            answer = await buy(own_client, auth, item.id, user_id=f"u{n}", idempotency_key="k")
            accepted[f"u{n}"] = answer.json()["order_id"]

        async def stored(count: int) -> bool:
            return len(await stored_order_ids(own_services)) >= count

        await eventually(lambda: stored(20))
        await own_redis.stop(signal.SIGKILL)  # a crash; AOF fsync always kept every write
        await asyncio.sleep(1.5)  # the worker meets the outage for a while
        assert worker.returncode is None, log.read_text()
        await own_redis.start()
        for n in range(20, 40):
            answer = await retry_until_answered(
                own_client, auth, item.id, user_id=f"u{n}", idempotency_key="k"
            )
            accepted[f"u{n}"] = answer.json()["order_id"]
        await eventually(lambda: stored(40))
    finally:
        worker.send_signal(signal.SIGTERM)
        code = await worker.wait()
    output = log.read_text()
    assert code == 0, output
    assert "Traceback" not in output, output
    assert output.count("order writer: Redis unreachable") == 1, output
    await assert_books_balance(own_services, item.id, allocated=100, accepted=accepted)


class Refusal:
    """Puts the Redis at `url` in a state where it refuses writes (or everything) with
    one error code, and takes it out again."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = Redis.from_url(url, decode_responses=True)
        self.busy: asyncio.Task[object] | None = None
        self.looping: Redis | None = None

    async def start(self, code: str) -> None:
        match code:
            case "OOM":
                await self.admin.config_set("maxmemory-policy", "noeviction")
                await self.admin.config_set("maxmemory", 1)
            case "READONLY":  # a demoted primary: its new primary is not reachable
                await self.admin.replicaof("127.0.0.1", closed_port())
            case "MASTERDOWN":
                await self.admin.config_set("replica-serve-stale-data", "no")
                await self.admin.replicaof("127.0.0.1", closed_port())
            case "NOREPLICAS":
                await self.admin.config_set("min-replicas-to-write", 1)
            case "BUSY":
                await self.admin.config_set("lua-time-limit", 10)
                self.looping = Redis.from_url(self.url)
                self.busy = asyncio.create_task(self._loop(self.looping))
                await eventually(self._busy)

    @staticmethod
    async def _loop(client: Redis) -> object:
        """A script that runs until SCRIPT KILL."""
        return await client.eval("while true do end", 0)

    async def _busy(self) -> bool:
        try:
            await self.admin.ping()
        except ResponseError as exc:
            return str(exc).startswith("BUSY")
        return False

    async def stop(self, code: str) -> None:
        match code:
            case "OOM":
                await self.admin.config_set("maxmemory", 0)
            case "READONLY" | "MASTERDOWN":
                await self.admin.replicaof("NO", "ONE")
                await self.admin.config_set("replica-serve-stale-data", "yes")
            case "NOREPLICAS":
                await self.admin.config_set("min-replicas-to-write", 0)
            case "BUSY":
                assert self.busy is not None
                assert self.looping is not None
                await self.admin.script_kill()
                with pytest.raises(ResponseError, match="killed"):
                    await self.busy
                await self.looping.aclose()


@pytest.fixture(params=["redis7", "redis62"])
async def refusing_redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A throwaway Redis of the test's own: the test Redis's version, or 6.2 (which
    reports a refusal inside a script as a script error)."""
    if request.param == "redis7":
        async with redis_server(tmp_path / "redis", args=VOLATILE) as server:
            yield server.url
    else:
        with embedded_redis(tmp_path) as url:
            yield url


@pytest.mark.parametrize("code", ["OOM", "READONLY", "MASTERDOWN", "NOREPLICAS", "BUSY"])
async def test_a_redis_that_cannot_take_a_purchase_now_answers_503_and_takes_nothing(
    settings: Settings, auth: Auth, refusing_redis_url: str, code: str
) -> None:
    """Out of memory, demoted, cut off from its primary, short of replicas, busy: each
    purchase answers 503 `recovering` with Retry-After (never 500), nothing is taken,
    the breaker counts them and opens; once Redis can take writes again, the retries
    with the same keys are decided and the books balance."""
    refusal = Refusal(refusing_redis_url)
    admin = refusal.admin
    application = create_app(
        settings.model_copy(
            update={
                "redis_url": refusing_redis_url,
                "redis_socket_timeout_seconds": 2.0,
                "redis_breaker_open_seconds": 0.2,
            }
        )
    )
    try:
        async with application.router.lifespan_context(application):
            services: Container = application.state.container
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://seckill.test") as c:
                item = await create_live_item(c, auth, stock=5, per_user_limit=1)
                users = [f"u{n}" for n in range(services.settings.redis_breaker_failures)]
                await refusal.start(code)
                try:
                    for user in users:
                        answer = await buy(c, auth, item.id, user_id=user, idempotency_key="k")
                        assert_problem(answer, 503, "recovering")
                        assert int(answer.headers["Retry-After"]) >= 1
                    assert services.watch.redis.state is BreakerState.OPEN
                finally:
                    await refusal.stop(code)
                keys = ItemKeys(services.settings.redis_key_prefix, item.id)
                assert await admin.hget(keys.sale, "stock") == "5"
                assert await admin.hlen(keys.buyers) == 0
                assert await admin.hlen(keys.queued) == 0
                assert await admin.exists(keys.orders) == 0 or await admin.xlen(keys.orders) == 0
                accepted: dict[str, str] = {}
                for user in users:
                    answer = await retry_until_answered(
                        c, auth, item.id, user_id=user, idempotency_key="k"
                    )
                    assert answer.status_code == 202, answer.text
                    accepted[user] = answer.json()["order_id"]
                await assert_books_balance(services, item.id, allocated=5, accepted=accepted)
    finally:
        await admin.aclose()
