"""rate_limit.lua's typed wrapper: bucket keys, KEYS/ARGV, the reply.

One bucket per (scope, user) and per (scope, client address). Each call touches one key,
so it runs on a Redis Cluster unchanged; the key's hash tag is the subject, so buckets
spread over the slots. Purchases do not come here: purchase.lua decides their limits in
the same round trip, on buckets in the item's slot (ItemKeys.user_rate / address_rate).
"""

import functools
import math
from dataclasses import dataclass
from enum import StrEnum

from app.config import Rate
from app.redis import RedisClient
from app.store.scripts import ScriptCall, Scripts

MICROSECONDS = 1_000_000


class Scope(StrEnum):
    """What is limited; each has its own buckets."""

    PURCHASE = "purchase"
    CLAIM = "claim"
    CHECKOUT = "checkout"
    QUOTE = "quote"  # prices a cart: its own buckets, so re-quoting spares the checkout's


def user_bucket(prefix: str, scope: Scope, user_id: str) -> str:
    return f"{prefix}:rl:{scope}:{{u:{user_id}}}"


def address_bucket(prefix: str, scope: Scope, address: str) -> str:
    return f"{prefix}:rl:{scope}:{{a:{address}}}"


@functools.cache
def rate_limit_args(rate: Rate | None) -> tuple[int, int]:
    """ARGV: the emission interval (µs between requests at the steady rate) and the burst;
    (0, 0) for no limit (purchase.lua's "off")."""
    if rate is None:
        return (0, 0)
    interval = max(1, rate.period_seconds * MICROSECONDS // rate.count)
    return (interval, rate.count)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    # When refused: how long until one request would be allowed.
    retry_after_seconds: float
    # Requests that could still be sent at once.
    remaining: int

    @property
    def retry_after_header(self) -> str:
        """Retry-After in whole seconds, at least 1 (RFC 9110 allows no fraction)."""
        return str(max(1, math.ceil(self.retry_after_seconds)))


def rate_limit_script_call(*, bucket: str, rate: Rate) -> ScriptCall:
    """rate_limit.lua's KEYS and ARGV: one request against `bucket` at `rate`."""
    return [bucket], list(rate_limit_args(rate))


def parse_reply(reply: list[int]) -> Verdict:
    allowed, retry_after_us, remaining = reply
    return Verdict(
        allowed=allowed == 1,
        retry_after_seconds=int(retry_after_us) / MICROSECONDS,
        remaining=int(remaining),
    )


def refused(retry_after_us: int) -> Verdict:
    """purchase.lua's refusal (outcome 9) as a verdict."""
    return Verdict(allowed=False, retry_after_seconds=retry_after_us / MICROSECONDS, remaining=0)


async def hit(redis: RedisClient, scripts: Scripts, *, bucket: str, rate: Rate) -> Verdict:
    """Count one request against `bucket` if `rate` allows it; a refusal changes nothing."""
    script_keys, script_args = rate_limit_script_call(bucket=bucket, rate=rate)
    reply = await scripts.rate_limit(keys=script_keys, args=script_args, client=redis)
    return parse_reply(reply)
