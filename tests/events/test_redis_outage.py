"""While Redis is away, event pages answer from Postgres, and a new event is kept (and
loaded into Redis later) rather than answered with a 500 that invites a duplicate."""

import httpx

from app.container import Container
from app.events import service as events
from tests.support.factories import Auth, buy, create_live_item, event_spec, item_spec
from tests.support.lifecycle import store_orders
from tests.support.outages import redis_unreachable


async def test_event_pages_answer_from_the_ledger_while_redis_is_away(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5, per_user_limit=2)
    assert (await buy(client, auth, item.id, quantity=2)).status_code == 202
    assert await store_orders(app_services) == 1

    async with redis_unreachable(app_services):
        shown = await client.get(f"/api/v1/items/{item.id}")

    assert shown.status_code == 200
    assert shown.json()["remaining"] == 3


async def test_an_event_created_while_redis_fails_is_kept_and_loaded_later(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    spec = event_spec(items=[item_spec(sku="OUTAGE-1", stock=3, per_user_limit=1)])
    async with redis_unreachable(app_services):
        created = await client.post("/api/v1/admin/events", json=spec, headers=auth.admin())
    assert created.status_code == 201, created.text
    item_id = created.json()["items"][0]["id"]
    assert (await buy(client, auth, item_id)).json()["code"] == "not_found"  # not on sale yet

    async with app_services.sessionmaker() as session:  # what every API process does at start
        await events.warm_up(session=session, services=app_services)

    assert (await buy(client, auth, item_id)).status_code == 202
    assert (await client.get("/api/v1/events", headers=auth.admin())).json()[0]["id"] == (
        created.json()["id"]
    )
