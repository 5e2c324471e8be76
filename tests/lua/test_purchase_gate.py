"""purchase.lua's gate against real Redis (7 and the embedded 6.2): a queue or draw sale
(`gated`) sells only to a buyer admitted to its event (ARGV[15]); refused, nothing is
taken and nothing counted. An open sale ignores the admission."""

from redis.asyncio import Redis

from app.auth import User
from app.config import Rate
from app.store.order_ids import new_order_id
from app.store.purchase import Outcome, purchase_script_call, run_purchase
from tests.support.lua import (
    HOUR_MS,
    MINUTE_MS,
    LuaSale,
    open_sale,
    redis_now_ms,
    sale_terms,
)

EVENT = 7


async def nothing_taken_or_counted(sale: LuaSale, redis: Redis, *, stock: int = 10) -> None:
    assert await sale.stock() == stock
    assert await sale.bought() == {}
    assert await sale.stream() == []
    assert await redis.pfcount(sale.keys.participants) == 0
    assert await redis.hget(sale.keys.stats, "attempts") is None


async def test_a_gated_sale_refuses_a_buyer_admitted_to_no_event(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, event_id=EVENT, gated=True)

    attempt = await sale.buy("u1", 1, idempotency_key="k1")

    assert (attempt.outcome, attempt.remaining, attempt.order_id) == (
        Outcome.NOT_ADMITTED,
        10,
        "",
    )
    await nothing_taken_or_counted(sale, any_redis)
    assert await any_redis.get(sale.keys.idempotency("u1", "k1")) is None


async def test_a_gated_sale_refuses_a_buyer_admitted_to_another_event(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, event_id=EVENT, gated=True)

    attempt = await sale.buy("u1", 1, admitted_event_id=EVENT + 1)

    assert attempt.outcome is Outcome.NOT_ADMITTED
    await nothing_taken_or_counted(sale, any_redis)


async def test_a_gated_sale_sells_to_an_admitted_buyer_within_the_limit(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, event_id=EVENT, gated=True, limit=2)

    outcomes = [(await sale.buy("u1", 1, admitted_event_id=EVENT)).outcome for _ in range(3)]

    # The pass admits; the per-user limit still decides how much.
    assert outcomes == [Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.LIMIT_EXCEEDED]
    assert await sale.bought() == {"u1": 2}
    assert await sale.stock() == 8


async def test_an_open_sale_ignores_the_admission(any_redis: Redis, key_prefix: str) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, event_id=EVENT)

    without = await sale.buy("u1", 1)
    elsewhere = await sale.buy("u2", 1, admitted_event_id=EVENT + 1)

    assert (without.outcome, elsewhere.outcome) == (Outcome.ACCEPTED, Outcome.ACCEPTED)


async def test_the_gate_answers_before_the_rate_limits_count(
    any_redis: Redis, key_prefix: str
) -> None:
    """A crowd without passes spends no rate-limit budget, the buyer's or the address's."""
    sale = await open_sale(any_redis, prefix=key_prefix, event_id=EVENT, gated=True)

    async def limited(admitted: int | None) -> Outcome:
        call = purchase_script_call(
            keys=sale.keys,
            user=User(id="u1"),
            quantity=1,
            order_id=new_order_id(sale.keys.item_id),
            idempotency_key=None,
            idempotency_ttl_seconds=60,
            user_rate=Rate(1, 60),
            address="198.51.100.1",
            address_rate=Rate(1, 60),
            admitted_event_id=admitted,
        )
        reply = await run_purchase(sale.scripts, call, client=sale.redis)
        return reply.outcome

    refused = [await limited(None) for _ in range(3)]

    assert refused == [Outcome.NOT_ADMITTED] * 3
    assert await any_redis.get(sale.keys.user_rate("u1")) is None
    assert await any_redis.get(sale.keys.address_rate("198.51.100.1")) is None
    await nothing_taken_or_counted(sale, any_redis)
    # The one purchase the limits allow is still there for the admitted buyer.
    assert await limited(EVENT) is Outcome.ACCEPTED
    assert await limited(EVENT) is Outcome.RATE_LIMITED


async def test_a_held_or_frozen_gated_sale_answers_as_before(
    any_redis: Redis, key_prefix: str
) -> None:
    """The gate comes after held (no such item) and frozen (recovering)."""
    held = await open_sale(any_redis, prefix=key_prefix, item_id=3, gated=True, held=True)
    frozen = await open_sale(any_redis, prefix=key_prefix, item_id=4, gated=True)
    await any_redis.hset(frozen.keys.sale, "frozen", "1")

    assert (await held.buy("u1", 1)).outcome is Outcome.NO_SUCH_ITEM
    assert (await frozen.buy("u1", 1)).outcome is Outcome.RECOVERING


async def test_a_term_refresh_gates_the_sale(any_redis: Redis, key_prefix: str) -> None:
    """`gated` is a term: warmup.lua writes it with the others, at a newer version."""
    sale = await open_sale(any_redis, prefix=key_prefix, event_id=EVENT)
    assert await any_redis.hget(sale.keys.sale, "gated") == "0"
    now = await redis_now_ms(any_redis)
    gated = sale_terms(
        item_id=sale.keys.item_id,
        stock=10,
        limit=2,
        starts_ms=now - MINUTE_MS,
        ends_ms=now + HOUR_MS,
        event_id=EVENT,
        version=1,
        gated=True,
    )

    assert await sale.warm(gated) is False  # the counters stay, the terms are refreshed

    assert await any_redis.hget(sale.keys.sale, "gated") == "1"
    assert (await sale.buy("u1", 1)).outcome is Outcome.NOT_ADMITTED
    assert (await sale.buy("u1", 1, admitted_event_id=EVENT)).outcome is Outcome.ACCEPTED


async def test_a_retry_whose_pass_expired_since_hears_its_first_answer(
    any_redis: Redis, key_prefix: str
) -> None:
    """The contract: a repeat with the same Idempotency-Key returns the first answer (and
    takes nothing), even once the pass that let the first one in has expired."""
    sale = await open_sale(any_redis, prefix=key_prefix, event_id=EVENT, gated=True, limit=2)
    first = await sale.buy("u1", 1, idempotency_key="k1", admitted_event_id=EVENT)
    assert first.outcome is Outcome.ACCEPTED

    again = await sale.buy("u1", 1, idempotency_key="k1")
    other_quantity = await sale.buy("u1", 2, idempotency_key="k1")
    new_key = await sale.buy("u1", 1, idempotency_key="k2")

    assert (again.outcome, again.order_id) == (Outcome.REPLAYED, first.order_id)
    assert (other_quantity.outcome, other_quantity.order_id) == (
        Outcome.KEY_REUSED,
        first.order_id,
    )
    assert new_key.outcome is Outcome.NOT_ADMITTED
    assert await sale.stock() == 9
    assert await sale.bought() == {"u1": 1}
