"""promotion_warmup.lua's typed wrapper: loading a promotion's terms and daily counters
from Postgres into Redis."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from app.moments import to_ms
from app.redis import RedisClient
from app.store.promotion_keys import PromotionKeys
from app.store.scripts import ScriptCall, Scripts
from app.store.warmup import Build, Built, parse_warmup_reply


@dataclass(frozen=True, slots=True)
class PromotionTerms:
    """What promotion.lua decides on, as Postgres holds it."""

    promotion_id: int
    starts_at: datetime
    ends_at: datetime
    daily_limit: int
    per_user_daily_limit: int
    held: bool  # its campaign is not approved


@dataclass(frozen=True, slots=True)
class DayHolders:
    """The orders holding a place on one day (order id -> user id), as Postgres has them,
    and when the day's keys expire."""

    day: date
    expires_at: datetime
    holders: Mapping[str, str] = field(default_factory=dict)


def promotion_warmup_script_call(
    *,
    keys: PromotionKeys,
    terms: PromotionTerms,
    days: Sequence[DayHolders] = (),
    build: Build = Build.IF_NEVER_BUILT,
    min_epoch: int = 0,
) -> ScriptCall:
    """promotion_warmup.lua's KEYS and ARGV (see the script's header)."""
    script_keys = [keys.promotion]
    args: list[str | int] = [
        to_ms(terms.starts_at),
        to_ms(terms.ends_at),
        terms.daily_limit,
        terms.per_user_daily_limit,
        "1" if terms.held else "0",
        build.value,
        min_epoch,
        len(days),
    ]
    for day in days:
        script_keys += keys.day(day.day).all()
        args += [to_ms(day.expires_at), len(day.holders)]
        for order_id, user_id in day.holders.items():
            args += [order_id, user_id]
    return script_keys, args


async def load_promotion(
    *,
    redis: RedisClient,
    scripts: Scripts,
    keys: PromotionKeys,
    terms: PromotionTerms,
    days: Sequence[DayHolders] = (),
    build: Build = Build.IF_NEVER_BUILT,
    min_epoch: int = 0,
) -> Built:
    """Put a promotion into Redis: its terms, and its counters as `build` says (above
    `min_epoch`, Postgres's newest generation of them)."""
    script_keys, script_args = promotion_warmup_script_call(
        keys=keys, terms=terms, days=days, build=build, min_epoch=min_epoch
    )
    # Its reply is warmup.lua's: {loaded, _, epoch}.
    return parse_warmup_reply(
        await scripts.promotion_warmup(keys=script_keys, args=script_args, client=redis)
    )
