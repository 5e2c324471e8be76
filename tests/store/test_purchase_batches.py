"""ScriptBatches (app/store/batches.py) with purchase.lua: the purchases of one loop turn
go to Redis in one round trip; each caller gets its own script's answer, the stock is taken
exactly as one by one."""

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.auth import User
from app.redis import RedisClient
from app.store.batches import ScriptBatches
from app.store.order_ids import new_order_id
from app.store.purchase import (
    Outcome,
    purchase_batches,
    purchase_script_call,
)
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


def _counting_round_trips(redis: Redis) -> list[int]:
    """Patches the pool to count the connections taken, one per round trip (an entry
    each)."""
    taken: list[int] = []
    pool = redis.connection_pool
    real: Callable[..., Any] = pool.get_connection

    async def get_connection(*args: Any, **kwargs: Any) -> Any:
        taken.append(1)
        return await real(*args, **kwargs)

    pool.get_connection = get_connection  # type: ignore[method-assign]
    return taken


async def test_one_turns_purchases_are_one_pipeline_and_each_gets_its_answer(
    redis: RedisClient, key_prefix: str
) -> None:
    assert isinstance(redis, Redis)
    sale = await open_sale(redis, prefix=key_prefix, stock=300, limit=2)
    batches = purchase_batches(redis, sale.scripts, max_calls=1000)
    made = _counting_round_trips(redis)
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
    batches = purchase_batches(redis, sale.scripts, max_calls=16)
    made = _counting_round_trips(redis)
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
    batches = purchase_batches(redis, sale.scripts, max_calls=1000)
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
    batches = purchase_batches(gone, sale.scripts, max_calls=1000)
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
    batches = purchase_batches(redis, sale.scripts, max_calls=1000)
    tasks = [asyncio.create_task(batches.run(_call(sale, f"u{n}"))) for n in range(5)]
    await asyncio.sleep(0)  # all five are waiting for the turn's batch
    tasks[0].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(r.outcome is Outcome.ACCEPTED for r in results[1:])  # type: ignore[union-attr]
    await batches.aclose()
    # The cancelled caller's script ran all the same (as a single call would have).
    assert await sale.stock() == 5


# Waits ARGV[2] microseconds (Redis's clock), then answers ARGV[1].
_SLOW = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
while true do
  local now = redis.call('TIME')
  if now[1] * 1000000 + now[2] - start >= tonumber(ARGV[2]) then break end
end
return ARGV[1]
"""


async def test_a_batch_cut_short_leaves_no_reply_for_the_next(redis: RedisClient) -> None:
    """A read that times out leaves the batch's replies on the connection: it is dropped,
    so the next batch reads its own replies, not those."""
    assert isinstance(redis, Redis)
    kwargs = redis.connection_pool.connection_kwargs
    impatient = Redis(
        host=kwargs["host"],
        port=kwargs["port"],
        db=kwargs.get("db", 0),
        socket_timeout=0.1,
        decode_responses=True,
        max_connections=1,  # the next batch must take the same connection
    )
    try:
        script = impatient.register_script(_SLOW)
        await impatient.script_load(_SLOW)
        batches: ScriptBatches[str] = ScriptBatches(impatient, script, str, max_calls=100)
        cut = await asyncio.gather(
            batches.run(([], ["a", 300_000])), batches.run(([], ["b", 0])), return_exceptions=True
        )
        assert all(isinstance(r, RedisTimeoutError) for r in cut)
        await asyncio.sleep(0.4)  # the slow script is done
        assert list(
            await asyncio.gather(batches.run(([], ["c", 0])), batches.run(([], ["d", 0])))
        ) == [
            "c",
            "d",
        ]
    finally:
        await impatient.aclose()
