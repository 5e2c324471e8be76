"""bench/stats_cost.py measures the live stats by removing purchase.lua's lines marked
`-- live stats`: what remains must still be the same purchase, counting nothing."""

from dataclasses import replace

from redis.asyncio import Redis

from app.store.purchase import Outcome
from app.store.scripts import lua_dir
from bench.stats_cost import without_stats
from tests.support.lua import open_sale


async def test_purchase_lua_without_its_marked_stats_lines_sells_and_counts_nothing(
    any_redis: Redis, key_prefix: str
) -> None:
    shipped = (lua_dir() / "purchase.lua").read_text()
    stripped = without_stats(shipped)
    assert len(shipped.splitlines()) - len(stripped.splitlines()) == 6
    sale = await open_sale(any_redis, prefix=key_prefix, stock=1, limit=1)
    sale = replace(
        sale, scripts=replace(sale.scripts, purchase=any_redis.register_script(stripped))
    )

    assert (await sale.buy("u1", 1)).outcome is Outcome.ACCEPTED
    assert (await sale.buy("u2", 1)).outcome is Outcome.SOLD_OUT
    assert await sale.stock() == 0
    keys = sale.keys
    assert await any_redis.exists(keys.stats, keys.participants, keys.converted) == 0
