"""purchase.lua against a Redis behind what the calling process saw accepted (it came
back from an older snapshot): the item is frozen and marked `behind`, nothing taken; a
rebuild by warmup.lua starts a newer generation, on which the same process sells again
(app/store/generations.py)."""

from dataclasses import replace

from redis.asyncio import Redis

from app.store.generations import Generation, SeenGenerations
from app.store.purchase import Outcome
from tests.support.lua import HOUR_MS, open_sale, redis_now_ms, sale_terms


async def test_each_acceptance_carries_the_generation_and_the_next_seq(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, limit=5)
    first = await sale.buy("u1", 2)
    second = await sale.buy("u2", 1, seen=first.generation)
    refused = await sale.buy("u3", 11)

    assert first.generation.epoch > 0
    assert first.generation == Generation(first.generation.epoch, 1)
    assert second.generation == Generation(first.generation.epoch, 2)
    assert refused.outcome is Outcome.BAD_QUANTITY
    assert refused.generation == Generation()  # refusals carry none


async def test_a_redis_behind_the_seen_seq_is_frozen_and_takes_nothing(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, limit=5)
    seen = (await sale.buy("u1", 1)).generation
    await sale.buy("u2", 1, seen=seen)
    await any_redis.hset(sale.keys.sale, "seq", 1)  # as an older snapshot would say

    behind = await sale.buy("u3", 1, seen=Generation(seen.epoch, 2))

    assert (behind.outcome, behind.order_id) == (Outcome.RECOVERING, "")
    assert await sale.stock() == 8
    assert await sale.bought() == {"u1": 1, "u2": 1}
    assert await any_redis.hmget(sale.keys.sale, ["frozen", "behind"]) == ["1", "1"]
    # Everyone is held now, whatever they saw: the item stays frozen until rebuilt.
    assert (await sale.buy("u4", 1)).outcome is Outcome.RECOVERING


async def test_a_redis_with_an_older_epoch_is_frozen(any_redis: Redis, key_prefix: str) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10)
    seen = (await sale.buy("u1", 1)).generation

    later = replace(seen, epoch=seen.epoch + 1, seq=0)
    assert (await sale.buy("u2", 1, seen=later)).outcome is Outcome.RECOVERING
    assert await sale.stock() == 9


async def test_a_rebuild_starts_a_newer_generation_that_sells_again(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, limit=5)
    seen = SeenGenerations()
    for user in ("u1", "u2", "u3"):
        seen.saw(1, (await sale.buy(user, 1, seen=seen.known(1))).generation)
    await any_redis.hset(sale.keys.sale, "seq", 1)
    assert (await sale.buy("u4", 1, seen=seen.known(1))).outcome is Outcome.RECOVERING

    # freshness.rebuild(): the counters go, warmup.lua builds them again, then unfrozen
    await any_redis.hdel(sale.keys.sale, "stock", "behind", "frozen")
    now = await redis_now_ms(any_redis)
    terms = sale_terms(item_id=1, stock=10, limit=5, starts_ms=now - HOUR_MS, ends_ms=now + HOUR_MS)
    await sale.warm(terms, bought={"u1": 1, "u2": 1, "u3": 1})

    again = await sale.buy("u4", 1, seen=seen.known(1))
    assert again.outcome is Outcome.ACCEPTED
    assert again.generation.epoch > seen.known(1).epoch
    assert again.generation.seq == 1
    assert await sale.stock() == 6


def test_the_newest_generation_seen_wins_whatever_order_replies_arrive_in() -> None:
    seen = SeenGenerations()
    assert not seen.has_seen(7)
    for generation in (Generation(5, 3), Generation(5, 1), Generation(4, 9), Generation(5, 2)):
        seen.saw(7, generation)
    assert seen.known(7) == Generation(5, 3)
    seen.saw(7, Generation(6, 0))
    assert seen.known(7) == Generation(6, 0)
    assert seen.has_seen(7)
