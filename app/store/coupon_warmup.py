"""coupon_warmup.lua's protocol: KEYS/ARGV builder."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from app.store.claims import to_ms
from app.store.coupon_keys import CouponKeys
from app.store.warmup import Build

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


def coupon_warmup_call(
    *,
    keys: CouponKeys,
    terms: CouponClaimTerms,
    remaining: int,
    group: str,
    claimed_by_user: Mapping[str, int],
    build: Build = Build.IF_NEVER_BUILT,
    min_epoch: int = 0,
) -> tuple[list[str], list[str | int]]:
    """coupon_warmup.lua's KEYS and ARGV; its reply is {loaded, remaining, epoch}, read
    with app.store.warmup.Built."""
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
    ]
    for user_id, count in claimed_by_user.items():
        args += [user_id, count]
    return [keys.coupon, keys.claimers, keys.claims], args
