"""Reads of a sale's hot state in Redis: live stock, orders still in the stream.
(Loading it from Postgres is warmup.py.)"""

import asyncio
import contextlib
from collections.abc import Iterable, Sequence

from app.redis import RedisClient
from app.store.keys import ItemKeys
from app.store.records import NewOrder, parse_order

StockByItem = dict[int, int | None]  # None: the item's sale is not in Redis


async def remaining_stock(
    *, redis: RedisClient, prefix: str, item_ids: Iterable[int]
) -> StockByItem:
    """Live stock per item; None where the item's sale is not in Redis."""
    ids = list(item_ids)
    if not ids:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for item_id in ids:
            pipe.hget(ItemKeys(prefix, item_id).sale, "stock")
        values = await pipe.execute()
    return {i: (int(v) if v is not None else None) for i, v in zip(ids, values, strict=True)}


class StockReads:
    """The live stock of the same items, asked for by many requests of one loop turn (a
    waiting room's polls, each checking whether the event sold out), read once for all of
    them. The read is sent at the end of the turn, after the last of them asked, so none
    is answered with stock from before it came."""

    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._asked: dict[tuple[int, ...], asyncio.Future[StockByItem]] = {}
        self._in_flight: set[asyncio.Task[None]] = set()

    async def read(self, item_ids: Sequence[int]) -> StockByItem:
        ids = tuple(item_ids)
        stock = self._asked.get(ids)
        if stock is None:
            loop = asyncio.get_running_loop()
            stock = loop.create_future()
            # Every caller may be cancelled: the error is then nobody's to see.
            stock.add_done_callback(lambda read: read.cancelled() or read.exception())
            self._asked[ids] = stock
            loop.call_soon(self._send, ids, stock)
        # Shielded: one caller cancelled (its client gone) leaves the read to the others.
        return await asyncio.shield(stock)

    def _send(self, ids: tuple[int, ...], stock: asyncio.Future[StockByItem]) -> None:
        del self._asked[ids]  # later callers ask again: this read may predate them
        task = asyncio.create_task(self._read(ids, stock))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def aclose(self) -> None:
        """Let the reads in flight finish (their polls are being answered)."""
        for task in list(self._in_flight):
            with contextlib.suppress(Exception):
                await task

    async def _read(self, ids: tuple[int, ...], stock: asyncio.Future[StockByItem]) -> None:
        try:
            stock.set_result(
                await remaining_stock(redis=self._redis, prefix=self._prefix, item_ids=ids)
            )
        except Exception as exc:
            stock.set_exception(exc)
        except asyncio.CancelledError:  # shutting down: the callers are cancelled too
            stock.cancel()
            raise


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
