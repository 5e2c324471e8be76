"""warmup.lua's typed wrapper: loading an item's sale from Postgres's terms into Redis."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from app.moments import to_ms
from app.redis import RedisClient
from app.store.keys import GlobalKeys, ItemKeys
from app.store.scripts import ScriptCall, Scripts


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
    # Its campaign is not approved: purchase.lua treats the item as not there.
    held: bool = False
    # Its campaign's rules version in force (None: no campaign), stamped on each order.
    rules_version: int | None = None
    # Its event is entered through a queue or a draw: purchase.lua sells only to a buyer
    # whose pass admits them to the event (answer 12 otherwise).
    gated: bool = False
    # What a member pays (None: the price), and the units only members may take until
    # `member_reserved_until` (what they leave then is everyone's: purchase.lua decides
    # by its clock, so nothing has to move at the deadline).
    member_price: Decimal | None = None
    member_reserved: int = 0
    member_reserved_until: datetime | None = None


def terms_fields(terms: SaleTerms) -> list[str | int]:
    """The terms as the sale hash holds them (field, value, ...), as warmup.lua writes
    them: all of them, since one version stands for all (adjust_sale.lua)."""
    return [
        "starts_ms", to_ms(terms.starts_at),
        "ends_ms", to_ms(terms.ends_at),
        "early_ms", terms.member_early_access_seconds * 1000,
        "limit", terms.per_user_limit,
        "paused", "1" if terms.paused else "0",
        "price", str(terms.unit_price),
        "event", terms.event_id,
        "held", "1" if terms.held else "0",
        "rules", "" if terms.rules_version is None else terms.rules_version,
        "gated", "1" if terms.gated else "0",
        *_member_terms(terms),
    ]  # fmt: skip


def _member_terms(terms: SaleTerms) -> list[str | int]:
    """member_price, reserved, reserved_until_ms as the sale hash holds them."""
    until = terms.member_reserved_until
    return [
        "member_price", "" if terms.member_price is None else str(terms.member_price),
        "reserved", terms.member_reserved,
        "reserved_until_ms", 0 if until is None else to_ms(until),
    ]  # fmt: skip


class Build(StrEnum):
    """What warmup.lua (and coupon_warmup.lua) may do with the live counters."""

    TERMS_ONLY = "0"  # refresh the terms of live counters; missing ones stay missing
    IF_NEVER_BUILT = "1"  # build missing counters, unless the entity is frozen (lost)
    REBUILD = "2"  # replace the counters in a new generation; only while frozen


@dataclass(frozen=True, slots=True)
class Built:
    """warmup.lua's answer: `loaded` 1 written, 0 kept, -1 missing and not built, -2 not
    frozen (a rebuild refused); `epoch` the counters' generation in Redis (0: none)."""

    loaded: int
    epoch: int

    @property
    def written(self) -> bool:
        return self.loaded == 1


def warmup_script_call(
    *,
    prefix: str,
    group: str,
    terms: SaleTerms,
    units_sold: int,
    bought_by_user: Mapping[str, int],
    build: Build,
    min_epoch: int,
    member_units: int = 0,
) -> ScriptCall:
    """warmup.lua's KEYS and ARGV (see the script's header)."""
    keys = ItemKeys(prefix, terms.item_id)
    buyers: list[str | int] = []
    for user_id, units in bought_by_user.items():
        buyers += [user_id, units]
    return (
        [keys.sale, keys.buyers, keys.orders, keys.released],
        [
            terms.allocated - units_sold,
            to_ms(terms.starts_at),
            to_ms(terms.ends_at),
            terms.member_early_access_seconds * 1000,
            terms.per_user_limit,
            "1" if terms.paused else "0",
            str(terms.unit_price),
            terms.event_id,
            group,
            terms.allocated,
            terms.version,
            build.value,
            min_epoch,
            "1" if terms.held else "0",
            "" if terms.rules_version is None else terms.rules_version,
            "1" if terms.gated else "0",
            member_units,
            *_member_terms(terms)[1::2],
            *buyers,
        ],
    )


def parse_warmup_reply(reply: list[int]) -> Built:
    """{loaded, stock, epoch}, as coupon_warmup.lua's {loaded, remaining, epoch}."""
    loaded, _left, epoch = reply
    return Built(loaded=int(loaded), epoch=int(epoch))


async def load_sale(
    *,
    redis: RedisClient,
    scripts: Scripts,
    prefix: str,
    group: str,
    terms: SaleTerms,
    units_sold: int,
    bought_by_user: Mapping[str, int],
    build: Build = Build.IF_NEVER_BUILT,
    min_epoch: int = 0,
    member_units: int = 0,
) -> Built:
    """Put an item's sale into Redis: its terms (if newer), and its counters as `build`
    says (above `min_epoch`, Postgres's newest generation of them; `member_units`, the
    units members took, which the reserve left to them counts from)."""
    return await _warm_up(
        redis,
        scripts,
        prefix,
        group,
        terms,
        units_sold,
        bought_by_user,
        build,
        min_epoch,
        member_units,
    )


async def refresh_terms(
    *, redis: RedisClient, scripts: Scripts, prefix: str, group: str, terms: SaleTerms
) -> bool:
    """Refresh a live sale's terms (if newer) without touching its counters; False if
    the sale has no counters in Redis (nothing written: build it with load_sale)."""
    built = await _warm_up(redis, scripts, prefix, group, terms, 0, {}, Build.TERMS_ONLY, 0, 0)
    return built.loaded == 0


async def _warm_up(
    redis: RedisClient,
    scripts: Scripts,
    prefix: str,
    group: str,
    terms: SaleTerms,
    units_sold: int,
    bought_by_user: Mapping[str, int],
    build: Build,
    min_epoch: int,
    member_units: int,
) -> Built:
    script_keys, script_args = warmup_script_call(
        prefix=prefix,
        group=group,
        terms=terms,
        units_sold=units_sold,
        bought_by_user=bought_by_user,
        build=build,
        min_epoch=min_epoch,
        member_units=member_units,
    )
    built = parse_warmup_reply(
        await scripts.warmup(keys=script_keys, args=script_args, client=redis)
    )
    if built.loaded >= 0:
        # The order writer discovers item streams through this set.
        await redis.sadd(GlobalKeys(prefix).items, terms.item_id)
    return built
