"""release.lua against real Redis (7 and the embedded 6.2): units come back at most once."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from app.store.keys import ItemKeys
from app.store.purchase import Outcome
from app.store.release import ReleaseOutcome
from tests.support.lua import LuaSale, open_sale, redis_now_ms

# Only a guard against a hang; no test asserts how long anything takes.
MESSAGE_WAIT_SECONDS = 10


@pytest.fixture
async def sale(any_redis: Redis, key_prefix: str) -> LuaSale:
    return await open_sale(any_redis, prefix=key_prefix, item_id=42, stock=10, limit=3)


@pytest.fixture
async def stock_back(sale: LuaSale) -> AsyncIterator[PubSub]:
    """A subscription to the stock-back channel, confirmed before the test runs."""
    async with sale.redis.pubsub() as pubsub:
        await pubsub.subscribe(sale.channel)
        async with asyncio.timeout(MESSAGE_WAIT_SECONDS):
            async for message in pubsub.listen():
                if message["type"] == "subscribe":
                    break
        yield pubsub


async def next_message(pubsub: PubSub) -> str:
    async with asyncio.timeout(MESSAGE_WAIT_SECONDS):
        async for message in pubsub.listen():
            if message["type"] == "message":
                return str(message["data"])
    raise AssertionError("the subscription ended")


async def test_release_gives_the_units_back(sale: LuaSale, stock_back: PubSub) -> None:
    first = await sale.buy("u1", 2)
    second = await sale.buy("u1", 1)
    assert (first.outcome, second.outcome) == (Outcome.ACCEPTED, Outcome.ACCEPTED)

    released = await sale.release(first.order_id, "u1", 2)

    assert (released.outcome, released.remaining) == (ReleaseOutcome.RELEASED, 9)
    assert await sale.stock() == 9
    assert await sale.bought() == {"u1": 1}
    assert await sale.redis.smembers(sale.keys.released) == {first.order_id}
    assert await next_message(stock_back) == "42"


async def test_a_count_brought_to_zero_is_removed(sale: LuaSale) -> None:
    order = await sale.buy("u1", 2)

    await sale.release(order.order_id, "u1", 2)

    assert await sale.redis.hexists(sale.keys.buyers, "u1") == 0
    assert await sale.bought() == {}
    # The user may buy up to the limit again.
    assert (await sale.buy("u1", 3)).outcome is Outcome.ACCEPTED


async def test_a_second_release_changes_nothing(sale: LuaSale, stock_back: PubSub) -> None:
    order = await sale.buy("u1", 2)
    await sale.buy("u2", 1)
    await sale.release(order.order_id, "u1", 2)
    assert await next_message(stock_back) == "42"

    again = await sale.release(order.order_id, "u1", 2)

    assert (again.outcome, again.remaining) == (ReleaseOutcome.ALREADY_RELEASED, 9)
    assert await sale.stock() == 9
    assert await sale.bought() == {"u2": 1}
    assert await sale.redis.smembers(sale.keys.released) == {order.order_id}
    # Nothing was published for the repeat: the next message is our own marker.
    await sale.redis.publish(sale.channel, "marker")
    assert await next_message(stock_back) == "marker"


async def test_retries_in_a_loop_release_once(sale: LuaSale) -> None:
    order = await sale.buy("u1", 3)

    outcomes = [(await sale.release(order.order_id, "u1", 3)).outcome for _ in range(10)]

    assert outcomes == [ReleaseOutcome.RELEASED] + [ReleaseOutcome.ALREADY_RELEASED] * 9
    assert await sale.stock() == 10
    assert await sale.bought() == {}


async def test_fifty_concurrent_releases_of_one_order_release_once(sale: LuaSale) -> None:
    order = await sale.buy("u1", 2)
    await sale.buy("u1", 1)

    results = await asyncio.gather(*(sale.release(order.order_id, "u1", 2) for _ in range(50)))

    outcomes = [r.outcome for r in results]
    assert outcomes.count(ReleaseOutcome.RELEASED) == 1
    assert outcomes.count(ReleaseOutcome.ALREADY_RELEASED) == 49
    assert {r.remaining for r in results} == {9}
    assert await sale.stock() == 9
    assert await sale.bought() == {"u1": 1}


async def test_no_such_item(sale: LuaSale, key_prefix: str) -> None:
    missing = LuaSale(sale.redis, sale.scripts, ItemKeys(key_prefix, 43))

    released = await missing.release("01JAAAAAAAAAAAAAAAAAAAAAAA-43", "u1", 1)

    assert (released.outcome, released.remaining) == (ReleaseOutcome.NO_SUCH_ITEM, 0)
    assert await sale.redis.exists(*missing.keys.all()) == 0
    assert await sale.stock() == 10


async def test_a_sale_whose_counters_are_being_rebuilt_takes_nothing_back(sale: LuaSale) -> None:
    bought = await sale.buy("u1", 2)
    await sale.redis.hdel(sale.keys.sale, "stock")  # freshness.rebuild() in progress

    released = await sale.release(bought.order_id, "u1", 2)

    assert released.outcome is ReleaseOutcome.NO_SUCH_ITEM
    assert await sale.redis.hget(sale.keys.sale, "stock") is None, "no stock out of nothing"
    assert await sale.bought() == {"u1": 2}
    assert not await sale.redis.sismember(sale.keys.released, bought.order_id)


async def test_a_closed_window_takes_nothing_back_and_a_retry_decides_the_same(
    sale: LuaSale,
) -> None:
    bought = await sale.buy("u1", 2)
    now = await redis_now_ms(sale.redis)
    await sale.redis.hset(sale.keys.sale, "ends_ms", now - 1)  # the sale has just closed

    first = await sale.release(bought.order_id, "u1", 2)
    again = await sale.release(bought.order_id, "u1", 2)

    assert (first.outcome, first.remaining) == (ReleaseOutcome.CLOSED, 8)
    assert again.outcome is ReleaseOutcome.CLOSED
    assert await sale.stock() == 8, "never into a sale nobody can buy"
    assert await sale.bought() == {"u1": 2}


async def test_an_order_released_before_the_window_closed_stays_released(
    sale: LuaSale,
) -> None:
    bought = await sale.buy("u1", 2)
    assert (await sale.release(bought.order_id, "u1", 2)).outcome is ReleaseOutcome.RELEASED
    now = await redis_now_ms(sale.redis)
    await sale.redis.hset(sale.keys.sale, "ends_ms", now - 1)

    # A retry after a crash before Postgres booked it: released, not now "closed"
    retry = await sale.release(bought.order_id, "u1", 2)

    assert (retry.outcome, retry.remaining) == (ReleaseOutcome.ALREADY_RELEASED, 10)
