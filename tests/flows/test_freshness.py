"""The hot path's own rollback guard, through HTTP (app/store/generations.py): an API
process that saw orders accepted refuses to sell on a Redis that is behind them, and
answers `recovering` (not 404) for a sale Redis lost; the order writer's check
(app/flows/freshness.py) then rebuilds the item in a newer generation."""

import httpx

from app.config import Settings
from app.container import Container
from app.flows.freshness import SALES, Verdict, check_once, recover
from app.processes.api import create_app
from app.store.keys import ItemKeys
from tests.support.factories import Auth, assert_problem, buy, create_live_item
from tests.support.lifecycle import store_orders


async def test_a_redis_behind_what_this_process_sold_is_frozen_rebuilt_and_sells_again(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=1)
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    for user in ("u1", "u2", "u3"):
        assert (await buy(client, auth, item.id, user_id=user)).status_code == 202
    await store_orders(app_services)
    # Redis back from a snapshot taken after the first sale: 9 left, one buyer
    await app_services.redis.hset(keys.sale, mapping={"seq": 1, "stock": 9})
    await app_services.redis.hdel(keys.buyers, "u2", "u3")

    assert_problem(await buy(client, auth, item.id, user_id="u2"), 503, "recovering")
    assert await app_services.redis.hget(keys.sale, "stock") == "9", "nothing taken"

    [finding] = await check_once(app_services)
    assert finding.verdict is Verdict.ROLLED_BACK
    # Rebuilt from Postgres, and held: orders accepted on the lost writes may exist.
    assert await app_services.redis.hmget(keys.sale, ["stock", "frozen", "behind"]) == [
        "7",
        "1",
        None,
    ]
    assert_problem(await buy(client, auth, item.id, user_id="u4"), 503, "recovering")

    assert await recover(app_services.redis, app_services.settings.redis_key_prefix, SALES, item.id)
    assert (await buy(client, auth, item.id, user_id="u4")).status_code == 202
    assert_problem(await buy(client, auth, item.id, user_id="u2"), 409, "limit_exceeded")
    assert await check_once(app_services) == []


async def test_a_sale_redis_lost_answers_recovering_until_rebuilt(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=1)
    never_bought = await create_live_item(client, auth, sku="CASE-1", stock=10, per_user_limit=1)
    assert (await buy(client, auth, item.id, user_id="u1")).status_code == 202
    await store_orders(app_services)
    prefix = app_services.settings.redis_key_prefix
    for lost in (item.id, never_bought.id):
        await app_services.redis.delete(ItemKeys(prefix, lost).sale)

    assert_problem(await buy(client, auth, item.id, user_id="u2"), 503, "recovering")
    # This process never saw the other one sell: as far as it can tell, not on sale.
    assert_problem(await buy(client, auth, never_bought.id, user_id="u2"), 404, "not_found")

    findings = await check_once(app_services)
    assert {f.verdict for f in findings} == {Verdict.UNLOADED}
    # Rebuilt and held (the sale was open: an order may have been lost with Redis's data)
    assert_problem(await buy(client, auth, item.id, user_id="u2"), 503, "recovering")
    for lost in (item.id, never_bought.id):
        assert await recover(app_services.redis, prefix, SALES, lost)
    assert (await buy(client, auth, item.id, user_id="u2")).status_code == 202
    assert_problem(await buy(client, auth, item.id, user_id="u1"), 409, "limit_exceeded")
    assert (await buy(client, auth, never_bought.id, user_id="u2")).status_code == 202


async def test_an_api_process_checks_redis_at_start_up_before_it_sells(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, settings: Settings
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=1)
    assert (await buy(client, auth, item.id, user_id="u1")).status_code == 202
    await store_orders(app_services)
    keys = ItemKeys(settings.redis_key_prefix, item.id)
    await app_services.redis.delete(keys.orders)  # Redis older than Postgres: no stream

    restarted = create_app(settings)
    async with restarted.router.lifespan_context(restarted):
        assert await app_services.redis.hget(keys.sale, "frozen") == "1"
        transport = httpx.ASGITransport(app=restarted)
        async with httpx.AsyncClient(transport=transport, base_url="http://seckill.test") as new:
            assert_problem(await buy(new, auth, item.id, user_id="u2"), 503, "recovering")


async def test_a_rebuild_is_done_with_entries_postgres_already_has(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """A snapshot taken between the writer's commit and its acknowledgement comes back
    with stored orders still in the stream, marked queued: the rebuild finishes them as
    the writer would (the audit would otherwise see stale marks)."""
    item = await create_live_item(client, auth, stock=10, per_user_limit=1)
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    assert (await buy(client, auth, item.id, user_id="u1")).status_code == 202
    [(_entry_id, fields)] = await app_services.redis.xrange(keys.orders) or []
    queued = await app_services.redis.hgetall(keys.queued)
    await store_orders(app_services)
    # As the old snapshot had them: the stored order's entry and mark, and older counters.
    await app_services.redis.xadd(keys.orders, {str(k): str(v) for k, v in (fields or {}).items()})
    await app_services.redis.hset(keys.queued, mapping={str(k): str(v) for k, v in queued.items()})
    await app_services.redis.delete(keys.sale)

    await check_once(app_services)

    assert await app_services.redis.xlen(keys.orders) == 0
    assert await app_services.redis.hlen(keys.queued) == 0
    assert await recover(app_services.redis, app_services.settings.redis_key_prefix, SALES, item.id)
    assert await app_services.redis.hget(keys.sale, "stock") == "9"
