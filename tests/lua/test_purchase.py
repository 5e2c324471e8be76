"""purchase.lua against real Redis (7 and the embedded 6.2): one test per outcome, the order
in which the checks are made, the member window and Redis's own clock."""

import asyncio
import random

import pytest
from redis.asyncio import Redis

from app.auth import User
from app.store.keys import ItemKeys
from app.store.order_ids import item_of
from app.store.purchase import Outcome, purchase_script_call
from tests.support.lua import (
    HOUR_MS,
    IDEMPOTENCY_TTL_SECONDS,
    MINUTE_MS,
    LuaSale,
    open_sale,
    redis_now_ms,
    sale_terms,
    sleep_past,
    wider_client,
)


async def test_accepted_takes_stock_and_records_the_order(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, item_id=42, stock=10, limit=3)
    before = await redis_now_ms(any_redis)

    attempt = await sale.buy("u1", 2, idempotency_key="k1")

    after = await redis_now_ms(any_redis)
    assert attempt.outcome is Outcome.ACCEPTED
    assert attempt.remaining == 8
    assert item_of(attempt.order_id) == 42
    assert await sale.stock() == 8
    assert await sale.bought() == {"u1": 2}

    queued = await sale.queued()
    assert list(queued) == [attempt.order_id]
    quantity, price, event, accepted_ms, user = queued[attempt.order_id].split("|")
    assert (quantity, price, event, user) == ("2", "19.90", "7", "u1")
    assert before <= int(accepted_ms) <= after

    [entry] = await sale.stream()
    assert entry == {
        "order_id": attempt.order_id,
        "user_id": "u1",
        "item_id": "42",
        "event_id": "7",
        "quantity": "2",
        "unit_price": "19.90",
        "accepted_ms": accepted_ms,
        "idempotency_key": "k1",
        "rules_version": "",
        "channel": "",
        "member": "0",
    }
    assert list(entry) == [
        "order_id",
        "user_id",
        "item_id",
        "event_id",
        "quantity",
        "unit_price",
        "accepted_ms",
        "idempotency_key",
        "rules_version",
        "channel",
        "member",
    ]

    idempotency = sale.keys.idempotency("u1", "k1")
    assert await any_redis.get(idempotency) == f"{attempt.order_id}|2"
    # The record outlives the sale's end by the TTL, so a repeat is known all sale long.
    ends_ms = int(await any_redis.hget(sale.keys.sale, "ends_ms") or 0)
    kept_ms = await any_redis.pttl(idempotency)
    assert kept_ms > IDEMPOTENCY_TTL_SECONDS * 1000
    assert kept_ms <= ends_ms - before + IDEMPOTENCY_TTL_SECONDS * 1000


async def test_accepted_without_idempotency_key_writes_no_record(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=5)

    attempt = await sale.buy("u1", 1)

    assert attempt.outcome is Outcome.ACCEPTED
    [entry] = await sale.stream()
    assert entry["idempotency_key"] == ""
    assert [
        key async for key in any_redis.scan_iter(match=f"{key_prefix}:*:idem:*", count=1000)
    ] == []
    # KEYS[3] is then the sale hash itself, which must come through untouched.
    assert await any_redis.type(sale.keys.sale) == "hash"
    assert await sale.stock() == 4


async def test_user_id_may_hold_the_separator(any_redis: Redis, key_prefix: str) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix)

    attempt = await sale.buy("odd|user|id", 1)

    assert attempt.outcome is Outcome.ACCEPTED
    fields = (await sale.queued())[attempt.order_id].split("|", 4)
    assert fields[4] == "odd|user|id"
    assert await sale.bought() == {"odd|user|id": 1}


async def test_replay_returns_the_first_order_and_takes_nothing(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, limit=2)
    first = await sale.buy("u1", 1, idempotency_key="k1")

    # A retry: same user, same key, same request.
    again = await sale.buy("u1", 1, idempotency_key="k1")

    assert first.outcome is Outcome.ACCEPTED
    assert again.outcome is Outcome.REPLAYED
    assert again.order_id == first.order_id
    assert again.remaining == 9
    assert await sale.stock() == 9
    assert await sale.bought() == {"u1": 1}
    assert len(await sale.stream()) == 1
    assert list(await sale.queued()) == [first.order_id]


async def test_idempotency_keys_are_per_user(any_redis: Redis, key_prefix: str) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10)

    mine = await sale.buy("u1", 1, idempotency_key="shared")
    theirs = await sale.buy("u2", 1, idempotency_key="shared")

    assert (mine.outcome, theirs.outcome) == (Outcome.ACCEPTED, Outcome.ACCEPTED)
    assert theirs.order_id != mine.order_id
    assert await sale.stock() == 8
    assert len(await sale.stream()) == 2


async def test_another_key_of_the_same_user_is_a_new_order(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, limit=2)

    first = await sale.buy("u1", 1, idempotency_key="k1")
    second = await sale.buy("u1", 1, idempotency_key="k2")

    assert (first.outcome, second.outcome) == (Outcome.ACCEPTED, Outcome.ACCEPTED)
    assert first.order_id != second.order_id
    assert await sale.bought() == {"u1": 2}


async def test_no_such_item(any_redis: Redis, key_prefix: str) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, item_id=1)
    missing = LuaSale(any_redis, sale.scripts, ItemKeys(key_prefix, 2))

    attempt = await missing.buy("u1", 1, idempotency_key="k1")

    assert (attempt.outcome, attempt.remaining, attempt.order_id) == (Outcome.NO_SUCH_ITEM, 0, "")
    assert await any_redis.exists(*missing.keys.all()) == 0
    assert await any_redis.exists(missing.keys.idempotency("u1", "k1")) == 0


async def test_paused(any_redis: Redis, key_prefix: str) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, paused=True)

    attempt = await sale.buy("u1", 1)

    assert (attempt.outcome, attempt.remaining, attempt.order_id) == (Outcome.PAUSED, 10, "")
    assert await sale.stock() == 10
    assert await sale.stream() == []


async def test_not_started(any_redis: Redis, key_prefix: str) -> None:
    now = await redis_now_ms(any_redis)
    sale = await open_sale(
        any_redis, prefix=key_prefix, stock=10, starts_ms=now + HOUR_MS, ends_ms=now + 2 * HOUR_MS
    )

    attempt = await sale.buy("u1", 1)

    assert (attempt.outcome, attempt.remaining, attempt.order_id) == (Outcome.NOT_STARTED, 10, "")
    assert await sale.stock() == 10
    assert await sale.bought() == {}


async def test_ended(any_redis: Redis, key_prefix: str) -> None:
    now = await redis_now_ms(any_redis)
    sale = await open_sale(
        any_redis, prefix=key_prefix, stock=10, starts_ms=now - 2 * HOUR_MS, ends_ms=now - HOUR_MS
    )

    attempt = await sale.buy("u1", 1)

    assert (attempt.outcome, attempt.remaining, attempt.order_id) == (Outcome.ENDED, 10, "")
    assert await sale.stock() == 10
    assert await sale.stream() == []


async def test_limit_exceeded_in_one_purchase_after_another(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, limit=2)
    assert (await sale.buy("u1", 1)).outcome is Outcome.ACCEPTED

    attempt = await sale.buy("u1", 2)

    assert (attempt.outcome, attempt.remaining, attempt.order_id) == (
        Outcome.LIMIT_EXCEEDED,
        9,
        "",
    )
    assert await sale.bought() == {"u1": 1}


async def test_limit_exceeded_across_several_purchases(any_redis: Redis, key_prefix: str) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, limit=3)

    outcomes = [(await sale.buy("u1", 1)).outcome for _ in range(5)]

    assert outcomes == [Outcome.ACCEPTED] * 3 + [Outcome.LIMIT_EXCEEDED] * 2
    assert await sale.bought() == {"u1": 3}
    assert await sale.stock() == 7
    # The limit is per user: another buyer is not held back.
    assert (await sale.buy("u2", 3)).outcome is Outcome.ACCEPTED


async def test_sold_out_when_stock_is_below_the_quantity(any_redis: Redis, key_prefix: str) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=1, limit=2)

    too_many = await sale.buy("u1", 2)
    last = await sale.buy("u1", 1)
    none_left = await sale.buy("u2", 1)

    assert (too_many.outcome, too_many.remaining) == (Outcome.SOLD_OUT, 1)
    assert (last.outcome, last.remaining) == (Outcome.ACCEPTED, 0)
    assert (none_left.outcome, none_left.remaining, none_left.order_id) == (
        Outcome.SOLD_OUT,
        0,
        "",
    )
    assert await sale.bought() == {"u1": 1}
    assert len(await sale.stream()) == 1


async def test_quantity_above_the_limit_is_a_bad_quantity(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, limit=2)

    attempt = await sale.buy("u1", 3)

    assert (attempt.outcome, attempt.remaining, attempt.order_id) == (
        Outcome.BAD_QUANTITY,
        10,
        "",
    )
    assert await sale.bought() == {}
    assert await sale.stream() == []


@pytest.mark.parametrize("quantity", ["0", "-3", "1.5", "x"])
async def test_a_quantity_that_is_not_a_positive_integer_is_a_bad_quantity(
    any_redis: Redis, key_prefix: str, quantity: str
) -> None:
    """The API validates this too; the script must not trust any caller with its stock."""
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, limit=2)
    keys, args = purchase_script_call(
        keys=sale.keys,
        user=User(id="u1"),
        quantity=1,
        order_id="o1",
        idempotency_key=None,
        idempotency_ttl_seconds=IDEMPOTENCY_TTL_SECONDS,
    )
    args[1] = quantity

    code, remaining, order_id = await sale.scripts.purchase(keys=keys, args=args, client=any_redis)

    assert (Outcome(code), remaining, order_id) == (Outcome.BAD_QUANTITY, 10, "")
    assert await sale.bought() == {}


# -- The order of the checks: no such item, bad quantity, idempotency, paused, window,
# -- limit, stock. Each case below fails two checks; the earlier one must answer.


async def test_bad_quantity_is_answered_before_paused(any_redis: Redis, key_prefix: str) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, limit=2, paused=True)

    assert (await sale.buy("u1", 3)).outcome is Outcome.BAD_QUANTITY


@pytest.mark.parametrize(
    ("starts_in_ms", "ends_in_ms"),
    [(HOUR_MS, 2 * HOUR_MS), (-2 * HOUR_MS, -HOUR_MS)],
    ids=["not-started", "ended"],
)
async def test_paused_is_answered_before_the_window(
    any_redis: Redis, key_prefix: str, starts_in_ms: int, ends_in_ms: int
) -> None:
    now = await redis_now_ms(any_redis)
    sale = await open_sale(
        any_redis,
        prefix=key_prefix,
        paused=True,
        starts_ms=now + starts_in_ms,
        ends_ms=now + ends_in_ms,
    )

    assert (await sale.buy("u1", 1)).outcome is Outcome.PAUSED


@pytest.mark.parametrize(
    ("paused", "starts_in_ms", "ends_in_ms", "expected"),
    [
        (True, -MINUTE_MS, HOUR_MS, Outcome.PAUSED),
        (False, HOUR_MS, 2 * HOUR_MS, Outcome.NOT_STARTED),
        (False, -2 * HOUR_MS, -HOUR_MS, Outcome.ENDED),
    ],
    ids=["paused", "not-started", "ended"],
)
async def test_a_replay_is_answered_before_pause_and_window(
    any_redis: Redis,
    key_prefix: str,
    paused: bool,
    starts_in_ms: int,
    ends_in_ms: int,
    expected: Outcome,
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10)
    first = await sale.buy("u1", 1, idempotency_key="k1")
    assert first.outcome is Outcome.ACCEPTED
    now = await redis_now_ms(any_redis)
    await sale.warm(
        sale_terms(
            item_id=sale.keys.item_id,
            stock=10,
            limit=2,
            starts_ms=now + starts_in_ms,
            ends_ms=now + ends_in_ms,
            paused=paused,
            version=1,  # an operator's change of the terms
        )
    )

    attempt = await sale.buy("u1", 1, idempotency_key="k1")
    fresh = await sale.buy("u1", 1, idempotency_key="k2")

    assert (attempt.outcome, attempt.order_id) == (Outcome.REPLAYED, first.order_id)
    assert (fresh.outcome, fresh.order_id) == (expected, "")


async def test_a_replay_is_answered_before_the_limit(any_redis: Redis, key_prefix: str) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, limit=2)
    first = await sale.buy("u1", 2, idempotency_key="k1")

    again = await sale.buy("u1", 2, idempotency_key="k1")

    assert (again.outcome, again.order_id) == (Outcome.REPLAYED, first.order_id)


async def test_a_replay_is_answered_before_sold_out(any_redis: Redis, key_prefix: str) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=1, limit=2)
    first = await sale.buy("u1", 1, idempotency_key="k1")

    again = await sale.buy("u1", 1, idempotency_key="k1")

    assert (again.outcome, again.remaining, again.order_id) == (
        Outcome.REPLAYED,
        0,
        first.order_id,
    )


async def test_the_limit_is_answered_before_sold_out(any_redis: Redis, key_prefix: str) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=2, limit=2)
    assert (await sale.buy("u1", 2)).outcome is Outcome.ACCEPTED

    assert (await sale.buy("u1", 1)).outcome is Outcome.LIMIT_EXCEEDED


# -- The window, on Redis's clock.


async def test_members_may_buy_early_access_seconds_before_the_start(
    any_redis: Redis, key_prefix: str
) -> None:
    now = await redis_now_ms(any_redis)
    sale = await open_sale(
        any_redis,
        prefix=key_prefix,
        starts_ms=now + 10 * MINUTE_MS,
        ends_ms=now + HOUR_MS,
        early_seconds=15 * 60,
    )

    member = await sale.buy("member", 1, member=True)
    other = await sale.buy("other", 1, member=False)

    assert member.outcome is Outcome.ACCEPTED
    assert other.outcome is Outcome.NOT_STARTED


async def test_members_wait_until_their_early_window_opens(
    any_redis: Redis, key_prefix: str
) -> None:
    now = await redis_now_ms(any_redis)
    sale = await open_sale(
        any_redis,
        prefix=key_prefix,
        starts_ms=now + 10 * MINUTE_MS,
        ends_ms=now + HOUR_MS,
        early_seconds=5 * 60,
    )

    assert (await sale.buy("member", 1, member=True)).outcome is Outcome.NOT_STARTED


async def test_the_sale_opens_on_redis_time(any_redis: Redis, key_prefix: str) -> None:
    opens_ms = await redis_now_ms(any_redis) + 300
    sale = await open_sale(
        any_redis, prefix=key_prefix, starts_ms=opens_ms, ends_ms=opens_ms + HOUR_MS
    )
    early = await sale.buy("u1", 1)

    await sleep_past(any_redis, opens_ms)
    late = await sale.buy("u1", 1)

    assert early.outcome is Outcome.NOT_STARTED
    assert late.outcome is Outcome.ACCEPTED


async def test_the_sale_closes_on_redis_time(any_redis: Redis, key_prefix: str) -> None:
    closes_ms = await redis_now_ms(any_redis) + 300
    sale = await open_sale(
        any_redis, prefix=key_prefix, starts_ms=closes_ms - HOUR_MS, ends_ms=closes_ms
    )
    in_time = await sale.buy("u1", 1)

    await sleep_past(any_redis, closes_ms)
    too_late = await sale.buy("u1", 1)

    assert in_time.outcome is Outcome.ACCEPTED
    assert too_late.outcome is Outcome.ENDED


# -- Many buyers at once.


async def test_five_hundred_concurrent_attempts_sell_exactly_the_stock(
    any_redis: Redis, key_prefix: str
) -> None:
    stock, limit = 100, 2
    sale = await open_sale(any_redis, prefix=key_prefix, stock=stock, limit=limit)
    rng = random.Random(500)
    attempts = [(f"u{rng.randrange(300)}", rng.randint(1, limit)) for _ in range(500)]

    crowd = wider_client(any_redis, max_connections=len(attempts))
    try:
        results = await asyncio.gather(
            *(sale.through(crowd).buy(user, quantity) for user, quantity in attempts)
        )
    finally:
        await crowd.aclose()

    remaining = await sale.stock()
    sold = sum(
        q for (_, q), r in zip(attempts, results, strict=True) if r.outcome is Outcome.ACCEPTED
    )
    assert remaining >= 0
    assert sold == stock - remaining
    stream = await sale.stream()
    assert sum(int(entry["quantity"]) for entry in stream) == sold
    assert len(stream) == sum(r.outcome is Outcome.ACCEPTED for r in results)
    bought = await sale.bought()
    assert max(bought.values()) <= limit
    assert sum(bought.values()) == sold
    assert await any_redis.hlen(sale.keys.queued) == len(stream)
    assert {r.outcome for r in results} <= {
        Outcome.ACCEPTED,
        Outcome.LIMIT_EXCEEDED,
        Outcome.SOLD_OUT,
    }


async def test_a_key_reused_for_another_quantity_is_refused_and_takes_nothing(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, limit=3)
    first = await sale.buy("u1", 1, idempotency_key="k")

    reused = await sale.buy("u1", 2, idempotency_key="k")
    repeat = await sale.buy("u1", 1, idempotency_key="k")

    assert (reused.outcome, reused.order_id) == (Outcome.KEY_REUSED, first.order_id)
    assert (repeat.outcome, repeat.order_id) == (Outcome.REPLAYED, first.order_id)
    assert await sale.stock() == 9
    assert await sale.bought() == {"u1": 1}


async def test_a_record_without_its_quantity_replays_whatever_the_quantity(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, limit=3)
    await any_redis.set(sale.keys.idempotency("u1", "k"), "01OLDFORMAT-1")  # written before

    repeat = await sale.buy("u1", 2, idempotency_key="k")

    assert (repeat.outcome, repeat.order_id) == (Outcome.REPLAYED, "01OLDFORMAT-1")
    assert await sale.stock() == 10


async def test_a_held_item_is_no_item_and_takes_nothing(any_redis: Redis, key_prefix: str) -> None:
    """Its campaign is not approved: answered as if it did not exist, nothing counted."""
    sale = await open_sale(any_redis, prefix=key_prefix, item_id=42, held=True, rules_version=1)

    attempt = await sale.buy("u1", 1, idempotency_key="k1")

    assert attempt.outcome is Outcome.NO_SUCH_ITEM
    assert await sale.stock() == 10
    assert await sale.bought() == {}
    assert await sale.stream() == []
    assert await any_redis.get(sale.keys.idempotency("u1", "k1")) is None
    assert await any_redis.pfcount(sale.keys.participants) == 0


async def test_the_order_carries_the_rules_version_and_channel(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, item_id=42, rules_version=3)

    attempt = await sale.buy("u1", 1, channel="app")

    assert attempt.outcome is Outcome.ACCEPTED
    [entry] = await sale.stream()
    assert (entry["rules_version"], entry["channel"]) == ("3", "app")
