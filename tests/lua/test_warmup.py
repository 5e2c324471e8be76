"""warmup.lua against real Redis (7 and the embedded 6.2): counters written once, static
fields always refreshed, the order writer's group created once."""

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.redis import Scripts
from app.seckill.keys import GlobalKeys, ItemKeys
from app.seckill.service import Outcome
from tests.lua.helpers import GROUP, HOUR_MS, MINUTE_MS, LuaSale, redis_now_ms, sale_terms

ITEM = 5


@pytest.fixture
async def sale(any_redis: Redis, key_prefix: str) -> LuaSale:
    """An item not yet in Redis."""
    return LuaSale(any_redis, await Scripts.load(any_redis), ItemKeys(key_prefix, ITEM))


async def whole_seconds_now(redis: Redis) -> int:
    # Whole seconds survive the datetime round trip in load_sale exactly.
    return await redis_now_ms(redis) // 1000 * 1000


async def test_first_load_writes_counters_buyers_and_terms(
    sale: LuaSale, any_redis: Redis, key_prefix: str
) -> None:
    now = await whole_seconds_now(any_redis)
    terms = sale_terms(
        item_id=ITEM,
        stock=20,
        limit=3,
        starts_ms=now - MINUTE_MS,
        ends_ms=now + HOUR_MS,
        early_seconds=90,
        price="5.50",
        event_id=11,
    )

    loaded = await sale.warm(terms, bought={"u1": 1, "u2": 3})

    assert loaded is True
    assert await any_redis.hgetall(sale.keys.sale) == {
        "stock": "16",
        "starts_ms": str(now - MINUTE_MS),
        "ends_ms": str(now + HOUR_MS),
        "early_ms": "90000",
        "limit": "3",
        "paused": "0",
        "price": "5.50",
        "event": "11",
    }
    assert await sale.bought() == {"u1": 1, "u2": 3}
    assert await any_redis.smembers(GlobalKeys(key_prefix).items) == {str(ITEM)}
    assert await any_redis.xlen(sale.keys.orders) == 0
    [group] = await any_redis.xinfo_groups(sale.keys.orders)
    assert (group["name"], group["consumers"], group["pending"]) == (GROUP, 0, 0)
    # The limit counts what Postgres says each user already holds.
    assert (await sale.buy("u2", 1)).outcome is Outcome.LIMIT_EXCEEDED
    assert (await sale.buy("u1", 2)).outcome is Outcome.ACCEPTED


async def test_a_second_load_keeps_live_counters_and_refreshes_the_terms(
    sale: LuaSale, any_redis: Redis
) -> None:
    now = await whole_seconds_now(any_redis)
    await sale.warm(
        sale_terms(
            item_id=ITEM, stock=10, limit=2, starts_ms=now - MINUTE_MS, ends_ms=now + HOUR_MS
        )
    )
    assert (await sale.buy("u1", 2)).outcome is Outcome.ACCEPTED

    loaded = await sale.warm(
        sale_terms(
            item_id=ITEM,
            stock=500,
            limit=4,
            starts_ms=now - 2 * MINUTE_MS,
            ends_ms=now + 2 * HOUR_MS,
            early_seconds=30,
            paused=True,
            price="1.25",
            event_id=8,
        ),
        bought={"someone-else": 4},
    )

    assert loaded is False
    assert await any_redis.hgetall(sale.keys.sale) == {
        "stock": "8",
        "starts_ms": str(now - 2 * MINUTE_MS),
        "ends_ms": str(now + 2 * HOUR_MS),
        "early_ms": "30000",
        "limit": "4",
        "paused": "1",
        "price": "1.25",
        "event": "8",
    }
    assert await sale.bought() == {"u1": 2}
    assert (await sale.buy("u1", 1)).outcome is Outcome.PAUSED


async def test_counters_are_rebuilt_when_the_stock_is_gone(sale: LuaSale, any_redis: Redis) -> None:
    now = await whole_seconds_now(any_redis)
    # A sale hash without its stock (a lost or evicted sale): stale buyers must not survive.
    await any_redis.hset(sale.keys.buyers, mapping={"stale": 2})
    await any_redis.hset(sale.keys.sale, "paused", "1")

    loaded = await sale.warm(
        sale_terms(
            item_id=ITEM, stock=10, limit=2, starts_ms=now - MINUTE_MS, ends_ms=now + HOUR_MS
        ),
        bought={"u1": 1},
    )

    assert loaded is True
    assert await sale.stock() == 9
    assert await sale.bought() == {"u1": 1}


async def test_the_consumer_group_is_created_once(sale: LuaSale, any_redis: Redis) -> None:
    now = await whole_seconds_now(any_redis)
    terms = sale_terms(
        item_id=ITEM, stock=10, limit=2, starts_ms=now - MINUTE_MS, ends_ms=now + HOUR_MS
    )
    await sale.warm(terms)
    order = await sale.buy("u1", 1)
    # The writer has read the order but not acknowledged it yet.
    await any_redis.xreadgroup(GROUP, "writer-1", {sale.keys.orders: ">"})

    assert await sale.warm(terms) is False

    [group] = await any_redis.xinfo_groups(sale.keys.orders)
    assert (group["name"], group["consumers"], group["pending"]) == (GROUP, 1, 1)
    [entry] = await sale.stream()
    assert entry["order_id"] == order.order_id


async def test_errors_other_than_busygroup_are_raised(sale: LuaSale, any_redis: Redis) -> None:
    now = await whole_seconds_now(any_redis)
    await any_redis.set(sale.keys.orders, "not a stream")

    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await sale.warm(
            sale_terms(
                item_id=ITEM, stock=10, limit=2, starts_ms=now - MINUTE_MS, ends_ms=now + HOUR_MS
            )
        )
