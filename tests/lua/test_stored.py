"""stored.lua against real Redis (7 and the embedded 6.2): a committed batch's entries
are acknowledged, deleted, their queued marks and failure counts cleared, in one call
however long the batch; a second call for the same batch changes nothing."""

from typing import Any

import pytest
from redis.asyncio import Redis

from app.store.keys import ItemKeys
from app.store.scripts import Scripts
from app.store.stored import forget_stored, joined_ids

GROUP = "order-writer"


async def delivered(redis: Redis, keys: ItemKeys, count: int) -> tuple[list[str], list[str]]:
    """`count` entries in the item's stream, read by the group, each with a queued mark."""
    await redis.xgroup_create(keys.orders, GROUP, id="0", mkstream=True)
    order_ids = [f"01JDORDER{n:017d}-7" for n in range(count)]
    async with redis.pipeline(transaction=False) as pipe:
        for order_id in order_ids:
            pipe.xadd(keys.orders, {"order_id": order_id})
            pipe.hset(keys.queued, order_id, "1|10.00|1|0|u")
        await pipe.execute()
    reply: Any = await redis.xreadgroup(GROUP, "c1", {keys.orders: ">"}, count=count)
    [(_stream, messages)] = reply
    return [entry_id for entry_id, _fields in messages], order_ids


async def forget(
    redis: Redis, keys: ItemKeys, entry_ids: list[str], order_ids: list[str]
) -> tuple[int, int, int]:
    reply = await forget_stored(
        redis,
        await Scripts.load(redis),
        stream=keys.orders,
        queued=keys.queued,
        failures=keys.failures,
        group=GROUP,
        entry_ids=entry_ids,
        record_ids=order_ids,
    )
    return reply.acknowledged, reply.deleted, reply.marks_cleared


@pytest.mark.parametrize("count", [1, 2_500])  # 2,500: more ids than one unpack() chunk
async def test_a_stored_batch_leaves_nothing_behind(
    any_redis: Redis, key_prefix: str, count: int
) -> None:
    keys = ItemKeys(key_prefix, 7)
    entry_ids, order_ids = await delivered(any_redis, keys, count)
    await any_redis.hset(keys.failures, entry_ids[0], 2)

    assert await forget(any_redis, keys, entry_ids, order_ids) == (count, count, count)

    assert await any_redis.xlen(keys.orders) == 0
    assert (await any_redis.xpending(keys.orders, GROUP))["pending"] == 0
    assert await any_redis.exists(keys.queued, keys.failures) == 0
    assert await forget(any_redis, keys, entry_ids, order_ids) == (0, 0, 0)


async def test_only_the_given_entries_are_forgotten(any_redis: Redis, key_prefix: str) -> None:
    keys = ItemKeys(key_prefix, 7)
    entry_ids, order_ids = await delivered(any_redis, keys, 10)

    assert await forget(any_redis, keys, entry_ids[:4], order_ids[:4]) == (4, 4, 4)

    assert await any_redis.xlen(keys.orders) == 6
    assert (await any_redis.xpending(keys.orders, GROUP))["pending"] == 6
    assert sorted(await any_redis.hkeys(keys.queued)) == order_ids[4:]


@pytest.mark.parametrize("ids", [["1-0", "a b"], ["1-0", ""]])
def test_an_id_that_would_split_wrongly_is_refused(ids: list[str]) -> None:
    with pytest.raises(ValueError, match="empty or holds a space"):
        joined_ids(ids)
