"""rate_limit.lua against real Redis (7 and the embedded 6.2): GCRA, one key per call."""

import asyncio
import math
import time

import pytest
from redis.asyncio import Redis

from app.auth import User
from app.config import Rate
from app.store.order_ids import new_order_id
from app.store.purchase import Outcome, Throttled, purchase_script_call, run_purchase
from app.store.rate_limit import (
    MICROSECONDS,
    Scope,
    Verdict,
    address_bucket,
    hit,
    rate_limit_args,
    user_bucket,
)
from app.store.scripts import Scripts
from tests.lua.test_key_layout import cluster_slot
from tests.support.lua import LuaSale, open_sale

FIVE_PER_MINUTE = Rate(5, 60)
INTERVAL_US = 12 * MICROSECONDS  # a minute over five


@pytest.fixture
async def scripts(any_redis: Redis) -> Scripts:
    return await Scripts.load(any_redis)


@pytest.fixture
def bucket(key_prefix: str) -> str:
    return user_bucket(key_prefix, Scope.PURCHASE, "u1")


async def test_a_full_bucket_allows_the_burst_then_refuses(
    scripts: Scripts, bucket: str, any_redis: Redis
) -> None:
    verdicts = [
        await hit(any_redis, scripts, bucket=bucket, rate=FIVE_PER_MINUTE) for _ in range(6)
    ]

    assert [v.allowed for v in verdicts] == [True] * 5 + [False]
    assert [v.remaining for v in verdicts[:5]] == [4, 3, 2, 1, 0]
    refused = verdicts[5]
    # The next request is allowed once one emission interval has passed (minus the moment
    # the six calls took), and the header rounds that up to whole seconds.
    assert refused.retry_after_header in {"11", "12"}
    assert math.ceil(refused.retry_after_seconds) == int(refused.retry_after_header)


async def test_a_refusal_changes_nothing(scripts: Scripts, bucket: str, any_redis: Redis) -> None:
    for _ in range(5):
        await hit(any_redis, scripts, bucket=bucket, rate=FIVE_PER_MINUTE)
    before = await any_redis.get(bucket)

    for _ in range(10):
        assert not (await hit(any_redis, scripts, bucket=bucket, rate=FIVE_PER_MINUTE)).allowed

    assert await any_redis.get(bucket) == before


async def test_the_bucket_refills_and_expires_when_full(
    scripts: Scripts, bucket: str, any_redis: Redis
) -> None:
    await hit(any_redis, scripts, bucket=bucket, rate=FIVE_PER_MINUTE)
    # One request in: the bucket is full again one interval later, and the key goes then.
    assert 0 < await any_redis.pttl(bucket) <= INTERVAL_US // 1000
    for _ in range(4):
        await hit(any_redis, scripts, bucket=bucket, rate=FIVE_PER_MINUTE)
    assert not (await hit(any_redis, scripts, bucket=bucket, rate=FIVE_PER_MINUTE)).allowed

    # Move the bucket's arrival time one interval back, as if 12 s had passed.
    tat = int(await any_redis.get(bucket) or 0)
    await any_redis.set(bucket, str(tat - INTERVAL_US), px=60_000)
    again = await hit(any_redis, scripts, bucket=bucket, rate=FIVE_PER_MINUTE)
    assert (again.allowed, again.remaining) == (True, 0)

    # A bucket whose arrival time has passed counts as full.
    await any_redis.set(bucket, "1", px=60_000)
    assert (await hit(any_redis, scripts, bucket=bucket, rate=FIVE_PER_MINUTE)).remaining == 4


async def test_buckets_are_separate_per_subject_and_scope(
    scripts: Scripts, key_prefix: str, any_redis: Redis
) -> None:
    one = Rate(1, 60)
    buckets = [
        user_bucket(key_prefix, Scope.PURCHASE, "u1"),
        user_bucket(key_prefix, Scope.PURCHASE, "u2"),
        user_bucket(key_prefix, Scope.CLAIM, "u1"),
        address_bucket(key_prefix, Scope.PURCHASE, "10.0.0.1"),
    ]
    assert len(set(buckets)) == len(buckets)
    for name in buckets:
        assert (await hit(any_redis, scripts, bucket=name, rate=one)).allowed
        assert not (await hit(any_redis, scripts, bucket=name, rate=one)).allowed


def test_per_second_rates_and_the_arguments() -> None:
    assert rate_limit_args(Rate(10, 1)) == (100_000, 10)
    assert rate_limit_args(Rate(5, 60)) == (12_000_000, 5)
    # Faster than a microsecond per request still moves the clock.
    assert rate_limit_args(Rate(5_000_000, 1)) == (1, 5_000_000)
    assert rate_limit_args(None) == (0, 0)


def test_bucket_keys_hash_on_their_subject() -> None:
    # One key per call: any slot will do, but a subject's buckets spread by subject, and
    # braces in a user id cannot reach outside the tag's subject.
    assert cluster_slot(user_bucket("sk", Scope.PURCHASE, "u1")) == cluster_slot("{u:u1}")
    odd = user_bucket("sk", Scope.PURCHASE, "a}b{c")
    assert odd.startswith("sk:rl:purchase:{u:a}")


async def test_a_burst_of_a_thousand_allows_exactly_the_burst(
    scripts: Scripts, bucket: str, any_redis: Redis
) -> None:
    rate = Rate(37, 60)
    in_flight = asyncio.Semaphore(64)  # the client's pool holds 100 connections

    async def one() -> Verdict:
        async with in_flight:
            return await hit(any_redis, scripts, bucket=bucket, rate=rate)

    started = time.monotonic()
    verdicts = await asyncio.gather(*(one() for _ in range(1000)))
    elapsed = time.monotonic() - started
    # Refills come every 1.6 s; a thousand calls on one connection pool take far less on
    # a quiet machine (exactly the burst), and on a busy one each refill lets exactly
    # one more through.
    refills = math.ceil(elapsed / 1.6)
    assert 37 <= sum(v.allowed for v in verdicts) <= 37 + refills


# -- purchase.lua's inlined limits (outcome 9) ---------------------------------------------


async def _limited_buy(
    sale: LuaSale, user_id: str, *, user_rate: Rate | None, address_rate: Rate | None
) -> tuple[Outcome, int, str]:
    keys, args = purchase_script_call(
        keys=sale.keys,
        user=User(id=user_id),
        quantity=1,
        order_id=new_order_id(sale.keys.item_id),
        idempotency_key=None,
        idempotency_ttl_seconds=60,
        user_rate=user_rate,
        address="198.51.100.1",
        address_rate=address_rate,
    )
    assert len({cluster_slot(k) for k in keys}) == 1, "one slot, limits included"
    reply = await run_purchase(sale.scripts, (keys, args), client=sale.redis)
    if isinstance(reply, Throttled):
        return reply.outcome, reply.retry_after_us, reply.limit
    return reply.outcome, reply.remaining, reply.order_id


async def test_purchase_refuses_over_the_users_limit_and_takes_nothing(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, item_id=5, stock=100, limit=100)
    answers = [
        await _limited_buy(sale, "u1", user_rate=Rate(3, 60), address_rate=None) for _ in range(5)
    ]
    assert [a[0] for a in answers] == [Outcome.ACCEPTED] * 3 + [Outcome.RATE_LIMITED] * 2
    outcome, retry_after_us, which = answers[3]
    assert which == "user"
    assert 0 < retry_after_us <= 20 * MICROSECONDS
    assert await sale.stock() == 97
    assert await sale.bought() == {"u1": 3}
    assert len(await sale.stream()) == 3


async def test_purchase_refused_by_the_address_counts_against_neither(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, item_id=6, stock=100, limit=100)
    user_rate, address_rate = Rate(3, 60), Rate(2, 60)
    outcomes = [
        (await _limited_buy(sale, user, user_rate=user_rate, address_rate=address_rate))[0]
        for user in ("u1", "u2", "u1", "u1")
    ]
    assert outcomes == [Outcome.ACCEPTED, Outcome.ACCEPTED] + [Outcome.RATE_LIMITED] * 2
    # u1 was refused twice by the address: still two purchases left in u1's own bucket.
    user_bucket_tat = await any_redis.get(sale.keys.user_rate("u1"))
    assert user_bucket_tat is not None
    _, _, which = await _limited_buy(sale, "u1", user_rate=user_rate, address_rate=address_rate)
    assert which == "address"
    assert await any_redis.get(sale.keys.user_rate("u1")) == user_bucket_tat
    # With the address limit off, u1 gets exactly its remaining two.
    again = [
        (await _limited_buy(sale, "u1", user_rate=user_rate, address_rate=None))[0]
        for _ in range(3)
    ]
    assert again == [Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.RATE_LIMITED]


async def test_purchase_with_limits_off_creates_no_bucket(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, item_id=7, stock=100, limit=100)
    for _ in range(10):
        outcome, _, _ = await _limited_buy(sale, "u1", user_rate=None, address_rate=None)
        assert outcome is Outcome.ACCEPTED
    keys = {k async for k in any_redis.scan_iter(match=f"{key_prefix}:*:rl:*")}
    assert keys == set()
