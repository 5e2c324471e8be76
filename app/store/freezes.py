"""Freezing an entity whose counters Redis decides on (an item's sale, a coupon's claims):
while its hash holds `frozen`, its script answers `recovering` and takes nothing
(purchase.lua, claim.lua), and only a rebuild (warmup.lua / coupon_warmup.lua "2") may
replace its counters. `behind` is set with it by the script that found Redis older than
what an API process saw accepted (app/store/generations.py)."""

from collections.abc import Sequence

from app.redis import RedisClient

FROZEN = "frozen"
BEHIND = "behind"
# Why the hot-store check froze it, for the operator (`seckill audit`, /readyz).
FROZEN_WHY = "frozen_why"
# What a refusal of a frozen entity suggests: a rebuild takes seconds, an operator longer.
FROZEN_RETRY_AFTER_SECONDS = 5


async def freeze(redis: RedisClient, hash_keys: Sequence[str]) -> None:
    """From now on nothing sells or is claimed on these. A hash Redis lost is created
    holding only the flag: still frozen, not "no such item"."""
    if not hash_keys:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for key in hash_keys:
            pipe.hset(key, FROZEN, "1")
        await pipe.execute()


async def unfreeze(redis: RedisClient, hash_key: str) -> bool:
    """Selling (claiming) resumes; False if it was not frozen."""
    return bool(await redis.hdel(hash_key, FROZEN))


async def frozen(redis: RedisClient, hash_keys: Sequence[str]) -> list[bool]:
    if not hash_keys:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for key in hash_keys:
            pipe.hget(key, FROZEN)
        flags = await pipe.execute()
    return [flag in ("1", b"1") for flag in flags]


def why_frozen(why: str | None, behind: str | None) -> str:
    """The reason to show an operator, from the hash's `frozen_why` and `behind`."""
    if why:
        return why
    return "behind what an API process saw accepted" if behind else "frozen"
