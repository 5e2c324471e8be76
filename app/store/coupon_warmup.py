"""coupon_warmup.lua's typed wrapper: loading a coupon's claim state from Postgres's
terms into Redis."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from app.moments import to_ms
from app.redis import RedisClient
from app.store.coupon_keys import CouponKeys, coupons_registry
from app.store.scripts import ScriptCall, Scripts
from app.store.warmup import Build, Built, parse_warmup_reply

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class CouponClaimTerms:
    """What claim.lua decides on, as Postgres holds it."""

    coupon_id: int
    claim_starts_at: datetime
    claim_ends_at: datetime
    audience: str
    per_user_limit: int
    valid_until: datetime | None
    valid_days_after_claim: int | None
    # Its campaign is not approved: claim.lua treats the coupon as not there.
    held: bool = False


def coupon_warmup_script_call(
    *,
    keys: CouponKeys,
    terms: CouponClaimTerms,
    remaining: int,
    group: str,
    claimed_by_user: Mapping[str, int],
    build: Build = Build.IF_NEVER_BUILT,
    min_epoch: int = 0,
) -> ScriptCall:
    """coupon_warmup.lua's KEYS and ARGV (see the script's header)."""
    args: list[str | int] = [
        remaining,
        to_ms(terms.claim_starts_at),
        to_ms(terms.claim_ends_at),
        terms.audience,
        terms.per_user_limit,
        "" if terms.valid_until is None else to_ms(terms.valid_until),
        "" if terms.valid_days_after_claim is None else terms.valid_days_after_claim * DAY_MS,
        group,
        build.value,
        min_epoch,
        "1" if terms.held else "0",
    ]
    for user_id, count in claimed_by_user.items():
        args += [user_id, count]
    return [keys.coupon, keys.claimers, keys.claims], args


async def load_claims(
    *,
    redis: RedisClient,
    scripts: Scripts,
    keys: CouponKeys,
    terms: CouponClaimTerms,
    remaining: int,
    group: str,
    claimed_by_user: Mapping[str, int],
    build: Build = Build.IF_NEVER_BUILT,
    min_epoch: int = 0,
) -> Built:
    """Put a coupon's claim state into Redis: its terms, and its counters as `build`
    says (above `min_epoch`, Postgres's newest generation of them)."""
    script_keys, script_args = coupon_warmup_script_call(
        keys=keys,
        terms=terms,
        remaining=remaining,
        group=group,
        claimed_by_user=claimed_by_user,
        build=build,
        min_epoch=min_epoch,
    )
    # Its reply is warmup.lua's: {loaded, remaining, epoch}.
    built = parse_warmup_reply(
        await scripts.coupon_warmup(keys=script_keys, args=script_args, client=redis)
    )
    if built.loaded >= 0:
        # The order writer discovers claim streams through this set.
        await redis.sadd(coupons_registry(keys.prefix), keys.coupon_id)
    return built
