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


def terms_fields(terms: SaleTerms) -> list[str | int]:
    """The terms as the sale hash holds them (field, value, ...), as warmup.lua writes
    them: all of them, since one version stands for all (adjust_sale.lua)."""
    return [
        "starts_ms", _ms(terms.starts_at),
        "ends_ms", _ms(terms.ends_at),
        "early_ms", terms.member_early_access_seconds * 1000,
        "limit", terms.per_user_limit,
        "paused", "1" if terms.paused else "0",
        "price", str(terms.unit_price),
        "event", terms.event_id,
    ]  # fmt: skip


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
    loaded = await _warm_up(redis, scripts, prefix, group, terms, units_sold, bought_by_user)
    return loaded == 1


async def refresh_terms(
    *, redis: RedisClient, scripts: Scripts, prefix: str, group: str, terms: SaleTerms
) -> bool:
    """Refresh a live sale's terms (if newer) without touching its counters; False if
    the sale has no counters in Redis (nothing written: build it with load_sale)."""
    return await _warm_up(redis, scripts, prefix, group, terms, None, {}) == 0


async def _warm_up(
    redis: RedisClient,
    scripts: Scripts,
    prefix: str,
    group: str,
    terms: SaleTerms,
    units_sold: int | None,  # None: terms only, never build the counters
    bought_by_user: Mapping[str, int],
) -> int:
    keys = ItemKeys(prefix, terms.item_id)
    buyers: list[str | int] = []
    for user_id, units in bought_by_user.items():
        buyers += [user_id, units]
    loaded, _stock = await scripts.warmup(
        keys=[keys.sale, keys.buyers, keys.orders, keys.released],
        args=[
            terms.allocated - (units_sold or 0),
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
            "0" if units_sold is None else "1",
            *buyers,
        ],
        client=redis,
    )
    if loaded == -1:
        return -1
    # The order writer discovers item streams through this set.
    await redis.sadd(GlobalKeys(prefix).items, terms.item_id)
    return int(loaded)
