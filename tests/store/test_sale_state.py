"""Reads of a sale's hot state: a stream read in pages finds every order once; the stock
reads of a loop turn's polls are shared, and never older than the poll."""

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.redis import RedisClient
from app.store import sale_state
from app.store.keys import ItemKeys
from app.store.sale_state import StockByItem, StockReads, orders_in_stream
from tests.support.lua import open_sale


async def test_the_stream_is_read_in_pages_and_every_order_found_once(
    any_redis: Redis, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=100, limit=1)
    accepted = [(await sale.buy(f"u{n}")).order_id for n in range(10)]
    monkeypatch.setattr(sale_state, "STREAM_PAGE", 3)  # 3 + 3 + 3 + 1
    found = await orders_in_stream(redis=any_redis, prefix=key_prefix, item_id=sale.keys.item_id)
    assert [o.id for o in found] == accepted
    monkeypatch.setattr(sale_state, "STREAM_PAGE", 5)  # a last page that is exactly full
    found = await orders_in_stream(redis=any_redis, prefix=key_prefix, item_id=sale.keys.item_id)
    assert [o.id for o in found] == accepted


async def _stock(redis: RedisClient, prefix: str, **stock: int) -> None:
    for item, units in stock.items():
        await redis.hset(ItemKeys(prefix, int(item.removeprefix("i"))).sale, "stock", units)


async def _turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_a_turns_reads_of_the_same_items_share_one_read(
    any_redis: RedisClient, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _stock(any_redis, key_prefix, i1=5, i2=0)
    reads = StockReads(any_redis, key_prefix)
    sent: list[tuple[int, ...]] = []
    real = sale_state.remaining_stock

    async def counting(**kwargs: Any) -> StockByItem:
        sent.append(tuple(kwargs["item_ids"]))
        return await real(**kwargs)

    monkeypatch.setattr(sale_state, "remaining_stock", counting)
    polls = [reads.read([1, 2]) for _ in range(200)] + [reads.read([2]) for _ in range(50)]
    answers = await asyncio.gather(*polls)
    assert answers == [{1: 5, 2: 0}] * 200 + [{2: 0}] * 50
    assert sorted(sent) == [(1, 2), (2,)]  # one read per set of items
    assert await reads.read([3]) == {3: None}  # no sale in Redis


async def test_a_read_asked_after_one_was_sent_is_a_read_of_its_own(
    any_redis: RedisClient, key_prefix: str
) -> None:
    """A poll is never answered with stock read before it came."""
    await _stock(any_redis, key_prefix, i1=5)
    reads = StockReads(any_redis, key_prefix)
    first = asyncio.create_task(reads.read([1]))
    await _turns(3)  # the first read is on its way
    await _stock(any_redis, key_prefix, i1=0)  # the last unit sold meanwhile
    assert await reads.read([1]) == {1: 0}
    assert (await first)[1] in (5, 0)


async def test_a_cancelled_caller_leaves_the_read_to_the_others(
    any_redis: RedisClient, key_prefix: str
) -> None:
    await _stock(any_redis, key_prefix, i1=7)
    reads = StockReads(any_redis, key_prefix)
    callers = [asyncio.create_task(reads.read([1])) for _ in range(5)]
    await _turns(1)
    callers[0].cancel()
    answers = await asyncio.gather(*callers, return_exceptions=True)
    assert isinstance(answers[0], asyncio.CancelledError)
    assert answers[1:] == [{1: 7}] * 4


async def test_a_failed_read_is_every_callers_error(key_prefix: str) -> None:
    gone = Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)  # nothing listens
    reads = StockReads(gone, key_prefix)
    try:
        answers = await asyncio.gather(*(reads.read([1]) for _ in range(5)), return_exceptions=True)
    finally:
        await gone.aclose()
    assert all(isinstance(a, RedisConnectionError) for a in answers)
