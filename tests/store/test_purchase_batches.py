"""PurchaseBatches: the purchases of one loop turn go to Redis as one pipeline; each
caller gets its own script's answer, the stock is taken exactly as one by one."""

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.auth import User
from app.redis import RedisClient
from app.store.order_ids import new_order_id
from app.store.purchase import Outcome, PurchaseBatches, purchase_script_call
from app.store.scripts import ScriptCall
from tests.conftest import REDIS_CLUSTER
from tests.support.lua import IDEMPOTENCY_TTL_SECONDS, LuaSale, decided, open_sale

pytestmark = pytest.mark.skipif(REDIS_CLUSTER, reason="batches are for a single Redis")


def _call(sale: LuaSale, user_id: str, quantity: int = 1) -> ScriptCall:
    return purchase_script_call(
        keys=sale.keys,
        user=User(id=user_id),
        quantity=quantity,
        order_id=new_order_id(sale.keys.item_id),
        idempotency_key=None,
        idempotency_ttl_seconds=IDEMPOTENCY_TTL_SECONDS,
    )


def _counting_pipelines(redis: Redis) -> list[int]:
    """Patches `redis.pipeline` to count the pipelines made (one entry each)."""
    made: list[int] = []
    real: Callable[..., Any] = redis.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        made.append(1)
        return real(*args, **kwargs)

    redis.pipeline = pipeline  # type: ignore[method-assign]
    return made


async def test_one_turns_purchases_are_one_pipeline_and_each_gets_its_answer(
    redis: RedisClient, key_prefix: str
) -> None:
    assert isinstance(redis, Redis)
    sale = await open_sale(redis, prefix=key_prefix, stock=300, limit=2)
    batches = PurchaseBatches(redis, sale.scripts, max_calls=1000)
    made = _counting_pipelines(redis)
    # 400 buyers at once, 100 of them twice over their limit: 300 units, so sold out.
    calls = [_call(sale, f"u{n}") for n in range(300)] + [
        _call(sale, f"u{n}", quantity=2) for n in range(100)
    ]
    replies = await asyncio.gather(*(batches.run(call) for call in calls))
    assert len(made) == 1
    for (_, args), reply in zip(calls, replies, strict=True):
        if reply.outcome is Outcome.ACCEPTED:
            assert decided(reply).order_id == args[3]  # each caller its own order
    outcomes = [r.outcome for r in replies]
    assert outcomes[:300] == [Outcome.ACCEPTED] * 300
    assert set(outcomes[300:]) <= {Outcome.LIMIT_EXCEEDED, Outcome.SOLD_OUT}
    assert await sale.stock() == 0
    assert len(await sale.queued()) == 300


async def test_a_batch_is_at_most_max_calls(redis: RedisClient, key_prefix: str) -> None:
    assert isinstance(redis, Redis)
    sale = await open_sale(redis, prefix=key_prefix, stock=100, limit=1)
    batches = PurchaseBatches(redis, sale.scripts, max_calls=16)
    made = _counting_pipelines(redis)
    replies = await asyncio.gather(*(batches.run(_call(sale, f"u{n}")) for n in range(100)))
    assert {r.outcome for r in replies} == {Outcome.ACCEPTED}
    assert len(made) == 7  # 6 full batches of 16, then the 4 left at the turn's end


async def test_noscript_is_retried_alone_and_takes_the_stock_once(
    redis: RedisClient, key_prefix: str
) -> None:
    """After SCRIPT FLUSH (a restart or failover), the batch's EVALSHAs all fail with
    NOSCRIPT: nothing ran, so each is sent again alone, which loads the script."""
    assert isinstance(redis, Redis)
    sale = await open_sale(redis, prefix=key_prefix, stock=50, limit=1)
    batches = PurchaseBatches(redis, sale.scripts, max_calls=1000)
    await redis.script_flush()
    replies = await asyncio.gather(*(batches.run(_call(sale, f"u{n}")) for n in range(60)))
    assert [r.outcome for r in replies].count(Outcome.ACCEPTED) == 50
    assert await sale.stock() == 0
    assert len(await sale.queued()) == 50


async def test_a_lost_connection_is_every_callers_error(
    redis: RedisClient, key_prefix: str
) -> None:
    assert isinstance(redis, Redis)
    sale = await open_sale(redis, prefix=key_prefix, stock=10, limit=1)
    gone = Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)  # nothing listens
    batches = PurchaseBatches(gone, sale.scripts, max_calls=1000)
    try:
        results = await asyncio.gather(
            *(batches.run(_call(sale, f"u{n}")) for n in range(5)), return_exceptions=True
        )
    finally:
        await gone.aclose()
    assert all(isinstance(r, RedisConnectionError) for r in results)
    assert await sale.stock() == 10


async def test_a_cancelled_caller_leaves_the_others_answered(
    redis: RedisClient, key_prefix: str
) -> None:
    assert isinstance(redis, Redis)
    sale = await open_sale(redis, prefix=key_prefix, stock=10, limit=1)
    batches = PurchaseBatches(redis, sale.scripts, max_calls=1000)
    tasks = [asyncio.create_task(batches.run(_call(sale, f"u{n}"))) for n in range(5)]
    await asyncio.sleep(0)  # all five are waiting for the turn's batch
    tasks[0].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(r.outcome is Outcome.ACCEPTED for r in results[1:])  # type: ignore[union-attr]
    await batches.aclose()
    # The cancelled caller's script ran all the same (as a single call would have).
    assert await sale.stock() == 5
