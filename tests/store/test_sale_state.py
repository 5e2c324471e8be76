"""Reads of a sale's hot state: a stream read in pages finds every order once."""

import pytest
from redis.asyncio import Redis

from app.store import sale_state
from app.store.sale_state import orders_in_stream
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
