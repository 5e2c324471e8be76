"""warmup.lua's typed wrapper: loading an item's sale from Postgres's terms into Redis."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from app.redis import RedisClient
from app.store.keys import GlobalKeys, ItemKeys
from app.store.scripts import Scripts


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
    # event_items.terms_version: every change of these terms bumps it in Postgres, and
    # Redis keeps the newest version's terms (an older warm-up never undoes a change)
    version: int = 0


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def load_sale(
    *,
    redis: RedisClient,
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
        keys=[keys.sale, keys.buyers, keys.orders, keys.released],
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
            terms.allocated,
            terms.version,
            *buyers,
        ],
        client=redis,
    )
    # The order writer discovers item streams through this set.
    await redis.sadd(GlobalKeys(prefix).items, terms.item_id)
    return bool(loaded)
