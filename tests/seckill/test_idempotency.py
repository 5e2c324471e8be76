"""An Idempotency-Key protects for the sale's whole life and beyond: its record outlives
the sale's end, is rebuilt with a lost sale, a key reused for another quantity is
refused, and an order that slipped through after its record was lost is never stored,
never dead-lettered, and its units go back."""

import httpx

from app.container import Container
from app.events import service as events
from app.flows.audit import audit
from app.store.keys import ItemKeys
from tests.support.factories import Auth, assert_problem, buy, create_live_item
from tests.support.lifecycle import rebuild_and_resume, redis_bought, redis_stock, store_orders
from tests.support.orders import dead_letters, stored_order_ids


async def test_the_same_key_with_another_quantity_is_refused_and_takes_nothing(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=2, per_user_limit=2)
    first = await buy(client, auth, item.id, user_id="u1", quantity=1, idempotency_key="k")
    assert first.status_code == 202

    reused = await buy(client, auth, item.id, user_id="u1", quantity=2, idempotency_key="k")
    problem = assert_problem(reused, 422, "validation_error")
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    assert await redis_stock(app_services, item.id) == 1
    # Sold out now: the answer comes from the process's sold-out mark, and still checks.
    assert (await buy(client, auth, item.id, user_id="u2")).status_code == 202
    reused_late = await buy(client, auth, item.id, user_id="u1", quantity=2, idempotency_key="k")
    assert_problem(reused_late, 422, "validation_error")
    repeat = await buy(client, auth, item.id, user_id="u1", quantity=1, idempotency_key="k")
    assert (repeat.status_code, repeat.json()["order_id"]) == (202, first.json()["order_id"])


async def test_a_lost_sale_is_rebuilt_with_its_idempotency_records(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=1)
    first = await buy(client, auth, item.id, user_id="u1", idempotency_key="k")
    await store_orders(app_services)
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    await app_services.redis.delete(*keys.all(), keys.idempotency("u1", "k"))  # Redis lost it
    async with app_services.sessionmaker() as session:
        assert await events.warm_up(session=session, services=app_services) == 0  # frozen
    assert len(await rebuild_and_resume(app_services)) == 1

    repeat = await buy(client, auth, item.id, user_id="u1", idempotency_key="k")

    assert (repeat.status_code, repeat.json()["order_id"]) == (202, first.json()["order_id"])
    assert await redis_stock(app_services, item.id) == 9
    assert await app_services.redis.pttl(keys.idempotency("u1", "k")) > 0


async def test_an_order_repeating_a_stored_key_is_given_back_not_dead_lettered(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=3)
    first = await buy(client, auth, item.id, user_id="u1", idempotency_key="k")
    await store_orders(app_services)
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    await app_services.redis.delete(keys.idempotency("u1", "k"))  # evicted, say
    slipped = await buy(client, auth, item.id, user_id="u1", idempotency_key="k")
    assert slipped.status_code == 202
    assert slipped.json()["order_id"] != first.json()["order_id"]
    assert await redis_stock(app_services, item.id) == 8

    await store_orders(app_services)

    assert await stored_order_ids(app_services) == [first.json()["order_id"]]
    assert await dead_letters(app_services) == []
    assert await redis_stock(app_services, item.id) == 9, "its unit went back"
    assert await redis_bought(app_services, item.id) == {"u1": 1}
    assert await app_services.redis.xlen(keys.orders) == 0, "acknowledged and gone"
    assert not await app_services.redis.hexists(keys.queued, slipped.json()["order_id"])
    report = await audit(services=app_services)
    assert report.ok, report.problems
