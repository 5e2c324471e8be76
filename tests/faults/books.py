"""What every fault test checks afterwards: the answers the clients got against Redis,
Postgres and the audit."""

import asyncio
from collections import Counter

import httpx

from app.container import Container
from app.flows.audit import audit
from app.outages import drop_idle_connections
from app.store.keys import ItemKeys
from tests.support.factories import Auth
from tests.support.lifecycle import store_orders
from tests.support.orders import stored_order_ids
from tests.support.waiting import eventually


async def retry_until_answered(
    client: httpx.AsyncClient,
    auth: Auth,
    item_id: int,
    *,
    user_id: str,
    idempotency_key: str,
    quantity: int = 1,
) -> httpx.Response:
    """What a well-behaved client does after a 503 or a timeout: the same request, with
    the same Idempotency-Key, until it gets an answer that is not 503."""
    answer: httpx.Response | None = None

    async def answered() -> bool:
        nonlocal answer
        answer = await client.post(
            f"/api/v1/items/{item_id}/purchase",
            json={"quantity": quantity},
            headers={**auth.headers(user_id), "Idempotency-Key": idempotency_key},
        )
        assert answer.status_code != 500, answer.text
        if answer.status_code == 503:
            await asyncio.sleep(0.05)  # Retry-After, scaled down
            return False
        return True

    await eventually(answered)
    assert answer is not None
    return answer


async def assert_books_balance(
    services: Container, item_id: int, *, allocated: int, accepted: dict[str, str], limit: int = 1
) -> None:
    """`accepted` maps each user to the order id the client was finally told (one
    one-unit order per user). Stores what is still queued, then checks: every accepted
    order stored exactly once and nothing else, stock = allocated - sold, nobody over
    the limit, and the audit is clean."""
    await until_redis_answers(services)
    await store_orders(services)
    stored = await stored_order_ids(services)
    assert len(stored) == len(set(stored)), "an order stored twice"
    assert set(stored) == set(accepted.values()), "stored orders differ from accepted ones"
    assert len(set(accepted.values())) == len(accepted), "two users told the same order"
    keys = ItemKeys(services.settings.redis_key_prefix, item_id)
    remaining = int(await services.redis.hget(keys.sale, "stock") or -1)
    assert remaining == allocated - len(stored), "oversold or undersold"
    bought = Counter({u: int(n) for u, n in (await services.redis.hgetall(keys.buyers)).items()})
    assert all(n <= limit for n in bought.values())
    assert sum(bought.values()) == len(stored)
    report = await audit(services=services)
    assert report.ok, report.problems


async def until_redis_answers(services: Container) -> None:
    """After a restart: the test's own client drops the connections it broke."""
    await drop_idle_connections(services.redis)

    async def answers() -> bool:
        try:
            return bool(await services.redis.ping())
        except Exception:
            return False

    await eventually(answers)
