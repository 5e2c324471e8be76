import httpx

from tests.support.factories import Auth, buy, create_live_item


async def test_create_event_then_buy_then_order_is_stored(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    item = await create_live_item(client, auth, stock=5, per_user_limit=2)
    assert item.remaining == 5
    assert item.state == "live"
    response = await buy(client, auth, item.id, quantity=2)
    assert response.status_code == 202, response.text
    order_id = response.json()["order_id"]
    order = await client.get(f"/api/v1/orders/{order_id}", headers=auth.headers())
    assert order.status_code == 200
    assert order.json()["status"] == "queued"
    assert (await client.get(f"/api/v1/items/{item.id}")).json()["remaining"] == 3
