"""adjust_sale.lua against real Redis (7 and the embedded 6.2): stock by allocation (once,
in any order), the whole terms by version (the pause included), nothing for an item not
in Redis nor past the caller's deadline, and a crowd buying while stock is added never
oversells."""

import asyncio
from dataclasses import replace
from decimal import Decimal

from redis.asyncio import Redis

from app.store.adjust_sale import (
    Adjusted,
    AdjustOutcome,
    SaleAdjustment,
    adjust_sale,
    adjust_script_call,
    run_adjust,
)
from app.store.purchase import Outcome
from tests.support.lua import HOUR_MS, open_sale, redis_now_ms, wider_client


async def test_added_stock_is_sold_and_the_allocation_remembered(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=2, limit=5)
    assert (await sale.buy("u1", 2)).outcome is Outcome.ACCEPTED
    assert (await sale.buy("u2", 1)).outcome is Outcome.SOLD_OUT

    adjusted = await sale.adjust(allocated_before=2, allocated_after=5)

    assert adjusted.outcome is AdjustOutcome.APPLIED
    assert (adjusted.remaining, adjusted.added) == (3, 3)
    assert await any_redis.hget(sale.keys.sale, "allocated") == "5"
    assert (await sale.buy("u2", 3)).outcome is Outcome.ACCEPTED
    assert await sale.stock() == 0


async def test_a_change_applied_twice_or_out_of_order_adds_each_unit_once(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10)
    # Postgres committed 10 -> 15 then 15 -> 18; Redis hears the second first, then both
    # again (retries).
    await sale.adjust(allocated_before=15, allocated_after=18)
    await sale.adjust(allocated_before=10, allocated_after=15)
    await sale.adjust(allocated_before=15, allocated_after=18)

    assert await sale.stock() == 18
    assert await any_redis.hget(sale.keys.sale, "allocated") == "18"


async def test_a_sale_loaded_before_allocations_were_remembered_trusts_the_before(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10)
    await any_redis.hdel(sale.keys.sale, "allocated")  # loaded by an older warm-up

    await sale.adjust(allocated_before=10, allocated_after=12)

    assert await sale.stock() == 12


async def test_terms_change_by_version_only(any_redis: Redis, key_prefix: str) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, limit=2, price="19.90")
    now = await redis_now_ms(any_redis)

    await sale.adjust(
        allocated_before=10,
        allocated_after=10,
        terms_version=2,
        per_user_limit=1,
        unit_price="9.90",
        ends_ms=now + 2 * HOUR_MS,
    )
    # An older change arriving late leaves the newer one in force.
    await sale.adjust(allocated_before=10, allocated_after=10, terms_version=1, per_user_limit=5)

    limit, price, ends = await any_redis.hmget(sale.keys.sale, "limit", "price", "ends_ms")
    assert (limit, price, ends) == ("1", "9.90", str(now + 2 * HOUR_MS))
    assert (await sale.buy("u1", 1)).outcome is Outcome.ACCEPTED
    assert (await sale.buy("u1", 1)).outcome is Outcome.LIMIT_EXCEEDED
    assert (await sale.stream())[0]["unit_price"] == "9.90"


async def test_a_newer_version_carries_every_term_the_pause_included(
    any_redis: Redis, key_prefix: str
) -> None:
    """Issue 17, case 6: a pause whose write Redis missed must not be hidden by a later
    change of the price: every version carries the whole terms."""
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, price="19.90")
    paused = await sale.terms()
    # Postgres: paused at version 5, then the price changed at version 6. Redis heard
    # only the second.
    await sale.adjust(
        allocated_before=10,
        allocated_after=10,
        terms_version=6,
        unit_price="9.90",
        paused=not paused.paused,
    )

    assert await any_redis.hmget(sale.keys.sale, ["paused", "price", "terms_version"]) == [
        "1",
        "9.90",
        "6",
    ]
    assert (await sale.buy("u1", 1)).outcome is Outcome.PAUSED


async def test_a_call_redis_runs_past_its_deadline_changes_nothing(
    any_redis: Redis, key_prefix: str
) -> None:
    """A caller that gave up (503, nothing changed) must not be proved wrong by Redis
    running its call late: past the deadline, on Redis's clock, nothing is written."""
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, price="19.90")
    change = SaleAdjustment(
        item_id=sale.keys.item_id,
        allocated_before=10,
        allocated_after=12,
        terms=replace(await sale.terms(), version=3, unit_price=Decimal("9.90")),
    )
    call = adjust_script_call(
        prefix=key_prefix, change=change, apply_by_ms=await redis_now_ms(any_redis) - 1
    )

    late = await run_adjust(any_redis, sale.scripts, call)

    assert late == Adjusted(AdjustOutcome.TOO_LATE, remaining=0, added=0)
    assert await any_redis.hmget(sale.keys.sale, ["price", "stock", "terms_version"]) == [
        "19.90",
        "10",
        "0",
    ]
    in_time = await sale.adjust(
        allocated_before=10, allocated_after=12, terms_version=3, within_seconds=5
    )
    assert in_time.outcome is AdjustOutcome.APPLIED
    assert await sale.stock() == 12


async def test_a_shorter_window_closes_the_sale(any_redis: Redis, key_prefix: str) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10)
    now = await redis_now_ms(any_redis)

    await sale.adjust(allocated_before=10, allocated_after=10, terms_version=1, ends_ms=now - 1)

    assert (await sale.buy("u1", 1)).outcome is Outcome.ENDED


async def test_added_stock_is_announced_on_the_stock_back_channel(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=1)
    async with any_redis.pubsub() as pubsub:
        await pubsub.subscribe(sale.channel)
        await pubsub.get_message(timeout=1)  # the subscription confirmation

        await sale.adjust(allocated_before=1, allocated_after=1)  # nothing added: silent
        await sale.adjust(allocated_before=1, allocated_after=4)

        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
        assert message is not None
        assert message["data"] == str(sale.keys.item_id)
        assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2) is None


async def test_an_item_not_in_redis_is_left_alone(any_redis: Redis, key_prefix: str) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=1)
    terms = replace(await sale.terms(), version=1, per_user_limit=1)
    await any_redis.delete(sale.keys.sale)

    adjusted = await adjust_sale(
        redis=any_redis,
        scripts=sale.scripts,
        prefix=key_prefix,
        change=SaleAdjustment(
            item_id=sale.keys.item_id, allocated_before=1, allocated_after=3, terms=terms
        ),
    )

    assert adjusted.outcome is AdjustOutcome.NO_SUCH_ITEM
    assert await any_redis.exists(sale.keys.sale) == 0


async def test_a_crowd_buying_while_stock_is_added_sells_exactly_the_allocation(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=50, limit=1)
    crowd = wider_client(any_redis, 300)

    async def adds() -> None:
        for step in range(5):
            await sale.adjust(allocated_before=50 + 10 * step, allocated_after=60 + 10 * step)
            await asyncio.sleep(0)

    results, _ = await asyncio.gather(
        asyncio.gather(*(sale.through(crowd).buy(f"u{n}") for n in range(300))), adds()
    )
    await crowd.aclose()

    accepted = sum(1 for r in results if r.outcome is Outcome.ACCEPTED)
    assert accepted + await sale.stock() == 100
    assert all(r.outcome in (Outcome.ACCEPTED, Outcome.SOLD_OUT) for r in results)
