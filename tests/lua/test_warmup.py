"""warmup.lua against real Redis (7 and the embedded 6.2): counters written once, static
fields always refreshed, the order writer's group created once."""

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.store.keys import GlobalKeys, ItemKeys
from app.store.purchase import Outcome
from app.store.scripts import Scripts
from app.store.warmup import SaleTerms, refresh_terms
from tests.support.lua import GROUP, HOUR_MS, MINUTE_MS, LuaSale, redis_now_ms, sale_terms

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
        rules_version=4,
    )

    loaded = await sale.warm(terms, bought={"u1": 1, "u2": 3})

    assert loaded is True
    written = await any_redis.hgetall(sale.keys.sale)
    # A new generation: warmup.lua's own clock, no acceptance yet (app/store/generations.py)
    assert int(written.pop("epoch")) >= now
    assert (written.pop("seq"), written.pop("terms_version")) == ("0", "0")
    assert written == {
        "stock": "16",
        "allocated": "20",
        "starts_ms": str(now - MINUTE_MS),
        "ends_ms": str(now + HOUR_MS),
        "early_ms": "90000",
        "limit": "3",
        "paused": "0",
        "price": "5.50",
        "event": "11",
        "held": "0",
        "rules": "4",
        "gated": "0",
        "member_price": "",
        "reserved": "0",
        "reserved_until_ms": "0",
        "member_units": "0",
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
    generation_before = await any_redis.hget(sale.keys.sale, "epoch")

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
            version=1,  # Postgres's terms changed since the first load
        ),
        bought={"someone-else": 4},
    )

    assert loaded is False
    kept = await any_redis.hgetall(sale.keys.sale)
    assert (kept.pop("epoch"), kept.pop("seq")) == (generation_before, "1")  # same generation
    assert kept.pop("terms_version") == "1"
    assert kept == {
        "stock": "8",
        "allocated": "10",
        "starts_ms": str(now - 2 * MINUTE_MS),
        "ends_ms": str(now + 2 * HOUR_MS),
        "early_ms": "30000",
        "limit": "4",
        "paused": "1",
        "price": "1.25",
        "event": "8",
        "held": "0",
        "rules": "",
        "gated": "0",
        "member_price": "",
        "reserved": "0",
        "reserved_until_ms": "0",
        "member_units": "0",
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


async def test_an_older_version_of_the_terms_never_undoes_a_newer_one(
    sale: LuaSale, any_redis: Redis
) -> None:
    """The race: a warm-up reads Postgres, an operator's pause commits and reaches Redis,
    then the warm-up writes what it read. The pause stands."""
    now = await whole_seconds_now(any_redis)

    def terms(*, paused: bool, version: int, limit: int = 2) -> SaleTerms:
        return sale_terms(
            item_id=ITEM,
            stock=10,
            limit=limit,
            starts_ms=now - MINUTE_MS,
            ends_ms=now + HOUR_MS,
            paused=paused,
            version=version,
        )

    await sale.warm(terms(paused=False, version=3))
    read_before_the_pause = terms(paused=False, version=3, limit=5)
    await sale.warm(terms(paused=True, version=4))  # the pause, applied after its commit

    await sale.warm(read_before_the_pause)

    assert await any_redis.hmget(sale.keys.sale, ["paused", "limit", "terms_version"]) == [
        "1",
        "2",
        "4",
    ]
    assert (await sale.buy("u1", 1)).outcome is Outcome.PAUSED
    await sale.warm(terms(paused=False, version=5))  # the resume
    assert (await sale.buy("u1", 1)).outcome is Outcome.ACCEPTED


async def test_terms_only_refreshes_a_live_sale_and_writes_nothing_for_a_missing_one(
    sale: LuaSale, any_redis: Redis, key_prefix: str
) -> None:
    now = await whole_seconds_now(any_redis)
    terms = sale_terms(
        item_id=ITEM, stock=10, limit=2, starts_ms=now - MINUTE_MS, ends_ms=now + HOUR_MS
    )

    async def refresh(terms: SaleTerms) -> bool:
        return await refresh_terms(
            redis=any_redis, scripts=sale.scripts, prefix=key_prefix, group=GROUP, terms=terms
        )

    # Missing: nothing is written (not even the stream or its group), the caller builds.
    assert await refresh(terms) is False
    assert [k async for k in any_redis.scan_iter(match=f"{key_prefix}:*")] == []

    await sale.warm(terms)
    assert (await sale.buy("u1", 2)).outcome is Outcome.ACCEPTED
    paused = sale_terms(
        item_id=ITEM,
        stock=10,
        limit=2,
        starts_ms=now - MINUTE_MS,
        ends_ms=now + HOUR_MS,
        paused=True,
        version=1,
    )
    assert await refresh(paused) is True
    assert await sale.stock() == 8
    assert await sale.bought() == {"u1": 2}
    assert await any_redis.hget(sale.keys.sale, "paused") == "1"
