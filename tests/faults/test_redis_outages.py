"""Riding through Redis outages: a Redis that stops, restarts or stalls answers purchases
503 `recovering` (never 500), a retry with the same Idempotency-Key gets the first
answer, the worker stays up, and afterwards every accepted order is stored exactly once."""

import asyncio
import logging
import signal
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.container import Container
from tests.faults.books import assert_books_balance, retry_until_answered
from tests.support.factories import Auth, assert_problem, buy, create_live_item
from tests.support.orders import stored_order_ids
from tests.support.processes import start_cli
from tests.support.redis_servers import RedisServer
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
