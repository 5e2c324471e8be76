"""claim.lua and coupon_warmup.lua against real Redis (7 and the embedded 6.2): one test
per branch, plus a concurrent crowd."""

import asyncio
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from app.flows.dead_letters import stream_entries
from app.moments import from_ms
from app.redis import as_text
from app.store.claim import ClaimOutcome, ClaimReply, claim_script_call, run_claim
from app.store.coupon_keys import CouponKeys
from app.store.coupon_warmup import DAY_MS, CouponClaimTerms, load_claims
from app.store.order_ids import new_claim_id
from app.store.records import parse_claim, parse_queued_claim
from app.store.scripts import Scripts
from tests.support.lua import (
    GROUP,
    HOUR_MS,
    IDEMPOTENCY_TTL_SECONDS,
    MINUTE_MS,
    redis_now_ms,
    sleep_past,
    wider_client,
)


@dataclass(frozen=True, slots=True)
class LuaCoupon:
    redis: Redis
    scripts: Scripts
    keys: CouponKeys

    async def claim(
        self,
        user_id: str = "u1",
        *,
        member: bool = False,
        new_user: bool | None = False,
        idempotency_key: str | None = None,
        redis: Redis | None = None,
    ) -> ClaimReply:
        call = claim_script_call(
            keys=self.keys,
            user_id=user_id,
            member=member,
            new_user=new_user,
            claim_id=new_claim_id(self.keys.coupon_id),
            idempotency_key=idempotency_key,
            idempotency_ttl_seconds=IDEMPOTENCY_TTL_SECONDS,
        )
        return await run_claim(redis or self.redis, self.scripts, call)

    async def remaining(self) -> int:
        return int(await self.redis.hget(self.keys.coupon, "remaining") or -1)


async def open_coupon(
    redis: Redis,
    prefix: str,
    *,
    total: int = 10,
    limit: int = 1,
    audience: str = "all",
    starts_ms: int | None = None,
    ends_ms: int | None = None,
    valid_until_ms: int | None = None,
    valid_days: int | None = 7,
    claimed: dict[str, int] | None = None,
) -> LuaCoupon:
    now = await redis_now_ms(redis)
    coupon = LuaCoupon(redis, await Scripts.load(redis), CouponKeys(prefix, 5))
    await load_claims(
        redis=redis,
        scripts=coupon.scripts,
        keys=coupon.keys,
        terms=CouponClaimTerms(
            coupon_id=5,
            claim_starts_at=from_ms(now - MINUTE_MS if starts_ms is None else starts_ms),
            claim_ends_at=from_ms(now + HOUR_MS if ends_ms is None else ends_ms),
            audience=audience,
            per_user_limit=limit,
            valid_until=None if valid_until_ms is None else from_ms(valid_until_ms),
            valid_days_after_claim=None if valid_until_ms is not None else valid_days,
        ),
        remaining=total - sum((claimed or {}).values()),
        group=GROUP,
        claimed_by_user=claimed or {},
    )
    return coupon


async def test_claimed_and_recorded(any_redis: Redis, key_prefix: str) -> None:
    coupon = await open_coupon(any_redis, key_prefix, total=3)
    before = await redis_now_ms(any_redis)
    reply = await coupon.claim("u1")
    assert (reply.outcome, reply.remaining) == (ClaimOutcome.CLAIMED, 2)
    assert reply.valid_until_ms is not None
    assert before + 7 * DAY_MS <= reply.valid_until_ms <= before + 7 * DAY_MS + MINUTE_MS
    assert await any_redis.hgetall(coupon.keys.claimers) == {"u1": "1"}
    entries = stream_entries(await any_redis.xrange(coupon.keys.claims))
    record = parse_claim(entries[0][1])
    assert record is not None
    assert (record.id, record.coupon_id, record.user_id) == (reply.claim_id, 5, "u1")
    assert record.valid_until == reply.valid_until
    queued = as_text(await any_redis.hget(coupon.keys.queued, reply.claim_id))
    assert queued is not None
    assert parse_queued_claim(reply.claim_id, 5, queued) == record


async def test_fixed_valid_until(any_redis: Redis, key_prefix: str) -> None:
    until = await redis_now_ms(any_redis) + 3 * DAY_MS
    coupon = await open_coupon(any_redis, key_prefix, valid_until_ms=until)
    assert (await coupon.claim()).valid_until_ms == until


async def test_no_such_coupon(any_redis: Redis, key_prefix: str) -> None:
    coupon = LuaCoupon(any_redis, await Scripts.load(any_redis), CouponKeys(key_prefix, 9))
    assert (await coupon.claim()).outcome is ClaimOutcome.NO_SUCH_COUPON


async def test_replayed_before_anything_else(any_redis: Redis, key_prefix: str) -> None:
    coupon = await open_coupon(any_redis, key_prefix, total=1)
    first = await coupon.claim("u1", idempotency_key="k")
    again = await coupon.claim("u1", idempotency_key="k")
    assert (again.outcome, again.claim_id) == (ClaimOutcome.REPLAYED, first.claim_id)
    assert again.valid_until_ms == first.valid_until_ms
    assert await coupon.remaining() == 0
    assert (await coupon.claim("u2")).outcome is ClaimOutcome.EXHAUSTED


async def test_window(any_redis: Redis, key_prefix: str) -> None:
    now = await redis_now_ms(any_redis)
    later = await open_coupon(any_redis, key_prefix, starts_ms=now + HOUR_MS)
    assert (await later.claim()).outcome is ClaimOutcome.NOT_STARTED
    await any_redis.delete(*later.keys.all())
    closing = await open_coupon(any_redis, key_prefix, ends_ms=now + 50)
    await sleep_past(any_redis, now + 50)
    assert (await closing.claim()).outcome is ClaimOutcome.ENDED
    await any_redis.delete(*closing.keys.all())
    # Claimable a while longer, but no longer valid: a claim would arrive expired.
    expiring = await open_coupon(any_redis, key_prefix, valid_until_ms=now + 100)
    await sleep_past(any_redis, now + 100)
    assert (await expiring.claim()).outcome is ClaimOutcome.ENDED


@pytest.mark.parametrize(
    ("audience", "member", "new_user", "outcome"),
    [
        ("all", False, False, ClaimOutcome.CLAIMED),
        ("members", False, False, ClaimOutcome.AUDIENCE_MISMATCH),
        ("members", True, False, ClaimOutcome.CLAIMED),
        ("new_users", True, None, ClaimOutcome.ASK_WHO),
        ("new_users", True, False, ClaimOutcome.AUDIENCE_MISMATCH),
        ("new_users", False, True, ClaimOutcome.CLAIMED),
    ],
)
async def test_audience(
    any_redis: Redis,
    key_prefix: str,
    audience: str,
    member: bool,
    new_user: bool | None,
    outcome: ClaimOutcome,
) -> None:
    coupon = await open_coupon(any_redis, key_prefix, audience=audience)
    assert (await coupon.claim(member=member, new_user=new_user)).outcome is outcome
    assert await coupon.remaining() == (9 if outcome is ClaimOutcome.CLAIMED else 10)


async def test_limit_then_exhausted(any_redis: Redis, key_prefix: str) -> None:
    coupon = await open_coupon(any_redis, key_prefix, total=3, limit=2)
    assert [(await coupon.claim("u1")).outcome for _ in range(3)] == [
        ClaimOutcome.CLAIMED, ClaimOutcome.CLAIMED, ClaimOutcome.LIMIT_EXCEEDED,
    ]  # fmt: skip
    assert (await coupon.claim("u2")).outcome is ClaimOutcome.CLAIMED
    assert (await coupon.claim("u3")).outcome is ClaimOutcome.EXHAUSTED


async def test_warmup_keeps_live_counters(any_redis: Redis, key_prefix: str) -> None:
    coupon = await open_coupon(any_redis, key_prefix, total=5, claimed={"u1": 1})
    assert await coupon.remaining() == 4
    assert (await coupon.claim("u1")).outcome is ClaimOutcome.LIMIT_EXCEEDED
    await coupon.claim("u2")
    # A second warm-up refreshes the terms but keeps the counters of a crowd in progress.
    again = await open_coupon(any_redis, key_prefix, total=5, limit=2)
    assert await again.remaining() == 3
    assert (await again.claim("u1")).outcome is ClaimOutcome.CLAIMED


async def test_a_concurrent_crowd_never_over_claims(any_redis: Redis, key_prefix: str) -> None:
    coupon = await open_coupon(any_redis, key_prefix, total=50, limit=2)
    crowd = wider_client(any_redis, 300)
    try:
        replies = await asyncio.gather(
            *(coupon.claim(f"u{n % 40}", redis=crowd) for n in range(300))
        )
    finally:
        await crowd.aclose()
    claimed = [r for r in replies if r.outcome is ClaimOutcome.CLAIMED]
    assert len(claimed) == 50
    assert len({r.claim_id for r in claimed}) == 50
    assert await coupon.remaining() == 0
    counts = {k: int(v) for k, v in (await any_redis.hgetall(coupon.keys.claimers)).items()}
    assert sum(counts.values()) == 50
    assert max(counts.values()) <= 2
    assert await any_redis.xlen(coupon.keys.claims) == 50
