"""purchase.lua's member terms against real Redis (7 and the embedded 6.2): a member pays
the member price (kept on the order's stream entry and queued record), and units reserved
for members are theirs alone until the reserve ends, when what they left is everyone's
without anything moving."""

import asyncio
from collections import Counter
from decimal import Decimal

from redis.asyncio import Redis

from app.store.purchase import Outcome
from app.store.records import parse_order
from app.store.warmup import Build, load_sale
from tests.support.lua import (
    GROUP,
    MINUTE_MS,
    LuaSale,
    open_sale,
    redis_now_ms,
    sale_terms,
    sleep_past,
    wider_client,
)


async def reserved_for_a_minute(
    redis: Redis, prefix: str, *, stock: int, limit: int, reserved: int
) -> LuaSale:
    """An open sale with `reserved` of its `stock` for members, for a minute more."""
    now = await redis_now_ms(redis)
    return await open_sale(
        redis,
        prefix=prefix,
        stock=stock,
        limit=limit,
        member_reserved=reserved,
        reserved_until_ms=now + MINUTE_MS,
    )


async def test_a_member_pays_the_member_price_and_the_order_says_so(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, price="19.90", member_price="17.50")

    member = await sale.buy("m1", 2, member=True)
    shopper = await sale.buy("s1", 1)

    assert (member.outcome, shopper.outcome) == (Outcome.ACCEPTED, Outcome.ACCEPTED)
    orders = [parse_order(fields) for fields in await sale.stream()]
    assert [(o.user_id, o.unit_price, o.member) for o in orders if o is not None] == [
        ("m1", Decimal("17.50"), True),
        ("s1", Decimal("19.90"), False),
    ]
    queued = await sale.queued()
    assert queued[member.order_id].split("|")[1] == "17.50"
    assert queued[shopper.order_id].split("|")[1] == "19.90"
    assert await any_redis.hget(sale.keys.sale, "member_units") == "2"


async def test_a_member_price_above_a_lowered_price_gives_way_to_it(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, price="19.90", member_price="17.50")
    await sale.adjust(allocated_before=10, allocated_after=10, terms_version=5, unit_price="15.00")

    member = await sale.buy("m1", 1, member=True)

    assert member.outcome is Outcome.ACCEPTED
    assert (await sale.queued())[member.order_id].split("|")[1] == "15.00"


async def test_non_members_cannot_take_the_reserve(any_redis: Redis, key_prefix: str) -> None:
    sale = await reserved_for_a_minute(any_redis, key_prefix, stock=10, limit=10, reserved=4)

    first = await sale.buy("s1", 6)
    refused = await sale.buy("s2", 1)

    assert first.outcome is Outcome.ACCEPTED
    assert (refused.outcome, refused.remaining) == (Outcome.SOLD_OUT, 4)
    taken = await sale.buy("m1", 4, member=True)
    assert (taken.outcome, taken.remaining) == (Outcome.ACCEPTED, 0)


async def test_members_take_the_reserve_first(any_redis: Redis, key_prefix: str) -> None:
    sale = await reserved_for_a_minute(any_redis, key_prefix, stock=10, limit=10, reserved=4)

    assert (await sale.buy("m1", 3, member=True)).outcome is Outcome.ACCEPTED
    # One reserved unit is left: the other six are everyone's.
    assert (await sale.buy("s1", 7)).outcome is Outcome.SOLD_OUT
    assert (await sale.buy("s1", 6)).outcome is Outcome.ACCEPTED
    assert (await sale.buy("m2", 2, member=True)).outcome is Outcome.SOLD_OUT
    assert (await sale.buy("m2", 1, member=True)).outcome is Outcome.ACCEPTED
    assert await sale.stock() == 0


async def test_members_buying_past_the_reserve_leave_it_used_up(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await reserved_for_a_minute(any_redis, key_prefix, stock=10, limit=10, reserved=2)

    assert (await sale.buy("m1", 5, member=True)).outcome is Outcome.ACCEPTED
    assert (await sale.buy("s1", 5)).outcome is Outcome.ACCEPTED


async def test_what_members_left_is_everyones_once_the_reserve_ends(
    any_redis: Redis, key_prefix: str
) -> None:
    now = await redis_now_ms(any_redis)
    ends = now + 300
    sale = await open_sale(
        any_redis, prefix=key_prefix, stock=10, limit=10, member_reserved=4, reserved_until_ms=ends
    )
    assert (await sale.buy("s1", 6)).outcome is Outcome.ACCEPTED
    assert (await sale.buy("s2", 1)).outcome is Outcome.SOLD_OUT

    await sleep_past(any_redis, ends)

    assert (await sale.buy("s2", 4)).outcome is Outcome.ACCEPTED
    assert await sale.stock() == 0


async def test_a_reserve_of_the_whole_stock_sells_to_members_only(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await reserved_for_a_minute(any_redis, key_prefix, stock=3, limit=3, reserved=3)

    assert (await sale.buy("s1", 1)).outcome is Outcome.SOLD_OUT
    assert (await sale.buy("m1", 3, member=True)).outcome is Outcome.ACCEPTED


async def test_a_rebuild_counts_the_reserve_from_what_members_took(
    any_redis: Redis, key_prefix: str
) -> None:
    """warmup.lua's member_units: the reserve left after a rebuild is the reserve less
    every unit members took, as purchase.lua counted it."""
    now = await redis_now_ms(any_redis)
    terms = sale_terms(
        item_id=1,
        stock=10,
        limit=10,
        starts_ms=now - MINUTE_MS,
        ends_ms=now + 60 * MINUTE_MS,
        member_reserved=4,
        reserved_until_ms=now + MINUTE_MS,
    )
    sale = await open_sale(any_redis, prefix=key_prefix)
    await any_redis.delete(*sale.keys.all())
    await load_sale(
        redis=any_redis,
        scripts=sale.scripts,
        prefix=key_prefix,
        group=GROUP,
        terms=terms,
        units_sold=3,
        bought_by_user={"m1": 3},
        build=Build.IF_NEVER_BUILT,
        member_units=3,
    )

    assert await sale.stock() == 7
    # One reserved unit left: non-members may take six.
    assert (await sale.buy("s1", 7)).outcome is Outcome.SOLD_OUT
    assert (await sale.buy("s1", 6)).outcome is Outcome.ACCEPTED


async def test_a_crowd_of_members_and_shoppers_splits_the_stock_exactly(
    any_redis: Redis, key_prefix: str
) -> None:
    """300 buyers at once, half members: members get at least the reserve, non-members
    never more than the general stock, and not a unit more than the stock is sold."""
    sale = await reserved_for_a_minute(any_redis, key_prefix, stock=100, limit=1, reserved=40)
    crowd = wider_client(any_redis, 300)
    try:
        through = sale.through(crowd)
        decisions = await asyncio.gather(
            *(through.buy(f"u{n}", 1, member=n % 2 == 0) for n in range(300))
        )
    finally:
        await crowd.aclose()

    accepted = Counter(n % 2 == 0 for n, d in enumerate(decisions) if d.outcome is Outcome.ACCEPTED)
    assert accepted[True] + accepted[False] == 100
    assert accepted[False] <= 60
    assert accepted[True] >= 40
    assert await sale.stock() == 0
    assert len(await sale.stream()) == 100
    assert await any_redis.hget(sale.keys.sale, "member_units") == str(accepted[True])
