"""purchase.lua on an item frozen after a hot-store fault (app/flows/freshness.py):
`recovering`, nothing taken, before any other check (replays included: the idempotency
records may be the rolled-back ones)."""

from redis.asyncio import Redis

from app.store.freezes import freeze, unfreeze
from app.store.purchase import Outcome
from tests.support.lua import open_sale


async def test_a_frozen_item_takes_nothing_until_unfrozen(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, limit=2)
    first = await sale.buy("u1", 1, idempotency_key="k")
    assert first.outcome is Outcome.ACCEPTED

    await freeze(any_redis, [sale.keys.sale])
    attempt = await sale.buy("u2", 1)
    replay = await sale.buy("u1", 1, idempotency_key="k")

    assert (attempt.outcome, attempt.remaining, attempt.order_id) == (Outcome.RECOVERING, 9, "")
    assert replay.outcome is Outcome.RECOVERING
    assert await sale.stock() == 9
    assert len(await sale.stream()) == 1
    assert await sale.bought() == {"u1": 1}

    assert await unfreeze(any_redis, sale.keys.sale)
    assert (await sale.buy("u2", 1)).outcome is Outcome.ACCEPTED
    assert not await unfreeze(any_redis, sale.keys.sale)


async def test_a_frozen_item_whose_counters_are_being_rebuilt_is_not_unknown(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10)
    await freeze(any_redis, [sale.keys.sale])
    await any_redis.hdel(sale.keys.sale, "stock")  # as rebuild() does

    assert (await sale.buy("u1", 1)).outcome is Outcome.RECOVERING  # not "no such item"
