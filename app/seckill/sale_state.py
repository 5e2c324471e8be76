"""The hot state of a sale in Redis: loading it from Postgres, and reading live stock."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from redis.asyncio import Redis

from app.orders.repository import NewOrder
from app.redis import Scripts
from app.seckill.keys import GlobalKeys, ItemKeys
from app.seckill.worker import parse_order


@dataclass(frozen=True, slots=True)
class SaleTerms:
    """What purchase.lua needs to decide on one item, as Postgres holds it."""

    item_id: int
    event_id: int
    starts_at: datetime
    ends_at: datetime
    member_early_access_seconds: int
    per_user_limit: int
    paused: bool
    unit_price: Decimal
    allocated: int


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def load_sale(
    *,
    redis: Redis,
    scripts: Scripts,
    prefix: str,
    group: str,
    terms: SaleTerms,
    units_sold: int,
    bought_by_user: Mapping[str, int],
) -> bool:
    """Put an item's sale into Redis. Live counters that already exist are kept, so this
    is safe to run at any time; returns True if the counters were (re)built."""
    keys = ItemKeys(prefix, terms.item_id)
    buyers: list[str | int] = []
    for user_id, units in bought_by_user.items():
        buyers += [user_id, units]
    loaded, _stock = await scripts.warmup(
        keys=[keys.sale, keys.buyers, keys.orders],
        args=[
            terms.allocated - units_sold,
            _ms(terms.starts_at),
            _ms(terms.ends_at),
            terms.member_early_access_seconds * 1000,
            terms.per_user_limit,
            "1" if terms.paused else "0",
            str(terms.unit_price),
            terms.event_id,
            group,
            *buyers,
        ],
        client=redis,
    )
    # The order writer discovers item streams through this set.
    await redis.sadd(GlobalKeys(prefix).items, terms.item_id)
    return bool(loaded)


async def remaining_stock(
    *, redis: Redis, prefix: str, item_ids: Iterable[int]
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


async def orders_in_stream(*, redis: Redis, prefix: str, item_id: int) -> list[NewOrder]:
    """Accepted orders still waiting in the item's stream (not yet written, or written and
    not yet deleted: the caller tells those apart by asking Postgres afterwards)."""
    entries = await redis.xrange(ItemKeys(prefix, item_id).orders) or []
    parsed = (parse_order({str(k): str(v) for k, v in (f or {}).items()}) for _i, f in entries)
    return [order for order in parsed if order is not None]
