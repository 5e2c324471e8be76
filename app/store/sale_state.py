"""Reads of a sale's hot state in Redis: live stock, orders still in the stream.
(Loading it from Postgres is warmup.py.)"""

from collections.abc import Iterable

from app.redis import RedisClient
from app.store.keys import ItemKeys
from app.store.records import NewOrder, parse_order


async def remaining_stock(
    *, redis: RedisClient, prefix: str, item_ids: Iterable[int]
) -> dict[int, int | None]:
    """Live stock per item; None where the item's sale is not in Redis."""
    ids = list(item_ids)
    if not ids:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for item_id in ids:
            pipe.hget(ItemKeys(prefix, item_id).sale, "stock")
        values = await pipe.execute()
    return {i: (int(v) if v is not None else None) for i, v in zip(ids, values, strict=True)}


async def orders_in_stream(*, redis: RedisClient, prefix: str, item_id: int) -> list[NewOrder]:
    """Accepted orders still waiting in the item's stream (not yet written, or written and
    not yet deleted: the caller tells those apart by asking Postgres afterwards)."""
    entries = await redis.xrange(ItemKeys(prefix, item_id).orders) or []
    parsed = (parse_order({str(k): str(v) for k, v in (f or {}).items()}) for _i, f in entries)
    return [order for order in parsed if order is not None]
