"""retire.lua against real Redis (7 and the embedded 6.2): an ended sale with nothing
waiting has its growing keys put away, once; an open or unsettled one keeps them."""

from redis.asyncio import Redis

from app.store.purchase import Outcome
from app.store.retire import RetireOutcome, retire_sale
from tests.support.lua import LuaSale, open_sale, redis_now_ms


async def close(sale: LuaSale) -> None:
    await sale.redis.hset(sale.keys.sale, "ends_ms", await redis_now_ms(sale.redis) - 1)


async def test_an_ended_settled_sale_keeps_its_terms_and_loses_what_grows(
    any_redis: Redis, key_prefix: str
) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, limit=2)
    bought = await sale.buy("u1", 2)
    await sale.release(bought.order_id, "u1", 2)
    await sale.buy("u2", 1)
    await any_redis.delete(sale.keys.orders, sale.keys.queued)  # as the writer leaves it
    assert await retire_sale(any_redis, sale.scripts, sale.keys) is RetireOutcome.OPEN
    await close(sale)

    first = await retire_sale(any_redis, sale.scripts, sale.keys)
    again = await retire_sale(any_redis, sale.scripts, sale.keys)

    assert (first, again) == (RetireOutcome.RETIRED, RetireOutcome.RETIRED)
    keys = sale.keys
    assert await any_redis.exists(keys.buyers, keys.released, keys.queued, keys.failures) == 0
    assert await sale.stock() == 9
    assert await any_redis.hexists(keys.sale, "retired")
    assert (await sale.buy("u3", 1)).outcome is Outcome.ENDED


async def test_a_sale_with_orders_waiting_is_not_retired(any_redis: Redis, key_prefix: str) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=10, limit=2)
    await sale.buy("u1", 1)  # accepted, not stored yet
    await close(sale)

    assert await retire_sale(any_redis, sale.scripts, sale.keys) is RetireOutcome.UNSETTLED
    assert await sale.bought() == {"u1": 1}
    assert not await any_redis.hexists(sale.keys.sale, "retired")


async def test_no_sale_no_retirement(any_redis: Redis, key_prefix: str) -> None:
    sale = await open_sale(any_redis, prefix=key_prefix, stock=1)
    await any_redis.delete(sale.keys.sale)
    assert await retire_sale(any_redis, sale.scripts, sale.keys) is RetireOutcome.NO_SUCH_ITEM
