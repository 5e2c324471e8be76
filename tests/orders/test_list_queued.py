"""A shopper's order list shows orders still queued (accepted, not yet stored), newest
first, each once, and pages across queued and stored orders."""

import httpx

from app.container import Container
from tests.support.factories import Auth, assert_problem, create_event, item_spec
from tests.support.lifecycle import bought, store_orders


async def my_orders(
    client: httpx.AsyncClient, auth: Auth, user: str, **params: int
) -> list[dict[str, object]]:
    response = await client.get("/api/v1/orders", params=params, headers=auth.headers(user))
    assert response.status_code == 200, response.text
    orders: list[dict[str, object]] = response.json()
    return orders


async def test_queued_orders_are_listed_with_stored_ones(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_event(
        client,
        auth,
        items=[item_spec(sku="A", per_user_limit=5), item_spec(sku="B", per_user_limit=5)],
    )
    a, b = (i.id for i in event.items)
    stored = [await bought(client, auth, a, user_id="me") for _ in range(2)]
    await store_orders(app_services)
    queued = [await bought(client, auth, item, user_id="me") for item in (b, a)]
    await bought(client, auth, a, user_id="someone-else")

    listed = await my_orders(client, auth, "me")

    assert [o["id"] for o in listed] == [*reversed(queued), *reversed(stored)]
    assert [o["status"] for o in listed] == ["queued", "queued"] + ["pending_payment"] * 2
    page_one = await my_orders(client, auth, "me", limit=3)
    page_two = await my_orders(client, auth, "me", limit=3, offset=3)
    assert [o["id"] for o in page_one + page_two] == [o["id"] for o in listed]

    await store_orders(app_services)
    after = await my_orders(client, auth, "me")
    assert [o["id"] for o in after] == [o["id"] for o in listed]
    assert {o["status"] for o in after} == {"pending_payment"}


async def test_operators_list_orders_with_filters_and_a_cursor(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_event(
        client,
        auth,
        items=[item_spec(sku="A", per_user_limit=5), item_spec(sku="B", per_user_limit=5)],
    )
    a, b = (i.id for i in event.items)
    ids = [await bought(client, auth, a, user_id=f"u{n % 2}") for n in range(5)]
    other = await bought(client, auth, b, user_id="u0")
    await store_orders(app_services)
    assert (
        await client.post(f"/api/v1/orders/{ids[0]}/pay", headers=auth.headers("u0"))
    ).status_code == 200

    async def listed(**params: str | int) -> httpx.Response:
        return await client.get("/api/v1/admin/orders", params=params, headers=auth.admin())

    first = await listed(item_id=a, limit=3)
    second = await listed(item_id=a, limit=3, cursor=first.headers["X-Next-Cursor"])
    assert [o["id"] for o in first.json() + second.json()] == list(reversed(ids))
    assert "X-Next-Cursor" not in second.headers
    assert [o["id"] for o in (await listed(event_id=event.id, user_id="u0")).json()] == [
        other,
        ids[4],
        ids[2],
        ids[0],
    ]
    assert [o["id"] for o in (await listed(status="paid")).json()] == [ids[0]]
    assert (await listed(status="queued")).json() == []
    bad = await listed(status="lost")
    assert bad.status_code == 422
    # A cursor this endpoint never gave (schemathesis once sent one holding NUL: a 500).
    for cursor in ("not-an-order", "\u00bb(\x00+", "01JD0000000000000000000000-x"):
        refused = assert_problem(await listed(cursor=cursor), 422, "validation_error")
        assert refused["errors"][0]["field"] == "cursor"
    forbidden = await client.get("/api/v1/admin/orders", headers=auth.headers("u0"))
    assert forbidden.status_code == 403
