"""Idempotency records written again when a sale is rebuilt: a client retrying with its
Idempotency-Key after Redis lost the record must get its first order, not a second one
(purchase.lua reads the records; app/store/records.py is their format)."""

from collections.abc import Iterable
from dataclasses import dataclass

from app.redis import RedisClient
from app.store.keys import ItemKeys
from app.store.records import IdempotencyRecord

BATCH = 1_000  # records per pipeline round trip


@dataclass(frozen=True, slots=True)
class KeyedOrder:
    """An order that came with an Idempotency-Key."""

    user_id: str
    idempotency_key: str
    order_id: str
    quantity: int


async def restore_records(
    redis: RedisClient, keys: ItemKeys, orders: Iterable[KeyedOrder], *, ttl_ms: int
) -> int:
    """Write each order's record where none is (SET NX: a record Redis kept stays);
    returns how many were written."""
    written = 0
    batch: list[KeyedOrder] = []

    async def flush() -> int:
        async with redis.pipeline(transaction=False) as pipe:
            for order in batch:
                record = IdempotencyRecord(order.order_id, order.quantity)
                pipe.set(
                    keys.idempotency(order.user_id, order.idempotency_key),
                    record.encode(),
                    nx=True,
                    px=max(ttl_ms, 1),
                )
            replies = await pipe.execute()
        batch.clear()
        return sum(1 for reply in replies if reply)

    for order in orders:
        batch.append(order)
        if len(batch) >= BATCH:
            written += await flush()
    if batch:
        written += await flush()
    return written
