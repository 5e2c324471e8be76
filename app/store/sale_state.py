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


# Entries per XRANGE: a backlog of a million orders read in one reply would outlast any
# socket timeout (and hold Redis that long).
STREAM_PAGE = 10_000


async def orders_in_stream(*, redis: RedisClient, prefix: str, item_id: int) -> list[NewOrder]:
    """Accepted orders still waiting in the item's stream (not yet written, or written and
    not yet deleted: the caller tells those apart by asking Postgres afterwards)."""
    return [
        order
        for _entry_id, order in await stream_orders(redis=redis, prefix=prefix, item_id=item_id)
    ]


async def stream_orders(
    *, redis: RedisClient, prefix: str, item_id: int
) -> list[tuple[str, NewOrder]]:
    """orders_in_stream() with each order's stream entry id."""
    key = ItemKeys(prefix, item_id).orders
    found: list[tuple[str, NewOrder]] = []
    start = "-"
    while True:
        page = await redis.xrange(key, min=start, count=STREAM_PAGE) or []
        for entry_id, fields in page:
            order = parse_order({str(k): str(v) for k, v in (fields or {}).items()})
            if order is not None:
                found.append((_text(entry_id), order))
        if len(page) < STREAM_PAGE:
            return found
        start = f"({_text(page[-1][0])}"  # after the last one (exclusive ranges: Redis 6.2)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
