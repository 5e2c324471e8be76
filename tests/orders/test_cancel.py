"""Cancelling an order: who may, when, and the stock coming back exactly once."""

import asyncio
from typing import Any

import httpx
import pytest

from app.container import Container
from tests.support.factories import Auth, assert_problem, buy, create_live_item
from tests.support.lifecycle import (
    books,
    bought,
    order_row,
    redis_bought,
    redis_stock,
    released_set,
    returns_of,
    store_orders,
    stored_order,
    transitions,
    until,
)


def cancel(client: httpx.AsyncClient, headers: dict[str, str], order_id: str) -> Any:
    return client.post(f"/api/v1/orders/{order_id}/cancel", headers=headers)


async def test_the_owner_cancels_and_the_units_go_back_on_sale(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5, per_user_limit=3)
    order_id = await stored_order(client, auth, app_services, item.id, quantity=2)
    assert await redis_stock(app_services, item.id) == 3

    response = await cancel(client, auth.headers(), order_id)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["cancelled_at"] is not None
    assert await redis_stock(app_services, item.id) == 5
    assert await redis_bought(app_services, item.id) == {}
    assert await released_set(app_services, item.id) == {order_id}
    assert await transitions(app_services, order_id) == [
        ("pending_payment", "cancelled", "user_cancel")
    ]
    assert await returns_of(app_services, order_id) == [("released", 0, 2)]
    assert (await order_row(app_services, order_id)).stock_returned_at is not None
    (await books(app_services, item.id)).assert_balanced()


async def test_cancelling_twice_is_refused_and_returns_nothing_more(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await stored_order(client, auth, app_services, item.id)
    assert (await cancel(client, auth.headers(), order_id)).status_code == 200

    again = await cancel(client, auth.headers(), order_id)

    body = assert_problem(again, 409, "invalid_state")
    assert body["order_status"] == "cancelled"
    assert await redis_stock(app_services, item.id) == 5
    assert len(await transitions(app_services, order_id)) == 1


async def test_a_double_clicked_cancel_has_one_winner(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=50, per_user_limit=1)
    users = [f"u{n}" for n in range(20)]
    orders = [await bought(client, auth, item.id, user_id=u) for u in users]
    await store_orders(app_services)

    responses = await asyncio.gather(
        *[
            cancel(client, auth.headers(u), o)
            for u, o in zip(users, orders, strict=True)
            for _ in "ab"
        ]
    )

    for first, second in zip(responses[::2], responses[1::2], strict=True):
        assert sorted([first.status_code, second.status_code]) == [200, 409]
        loser = first if first.status_code == 409 else second
        assert_problem(loser, 409, "invalid_state")
    for order_id in orders:
        assert len(await transitions(app_services, order_id)) == 1
        assert len(await returns_of(app_services, order_id)) == 1
    assert await redis_stock(app_services, item.id) == 50
    assert await released_set(app_services, item.id) == set(orders)
    (await books(app_services, item.id)).assert_balanced()


async def test_someone_elses_order_is_not_found(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await stored_order(client, auth, app_services, item.id, user_id="owner")

    response = await cancel(client, auth.headers("intruder"), order_id)

    assert_problem(response, 404, "not_found")
    assert (await order_row(app_services, order_id)).status == "pending_payment"


async def test_a_queued_order_asks_for_a_retry_then_cancels(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await bought(client, auth, item.id)

    early = await cancel(client, auth.headers(), order_id)
    stranger = await cancel(client, auth.headers("intruder"), order_id)

    assert_problem(early, 409, "invalid_state")
    assert early.headers["Retry-After"] == "1"
    assert_problem(stranger, 404, "not_found")
    await store_orders(app_services)
    assert (await cancel(client, auth.headers(), order_id)).status_code == 200


@pytest.mark.parametrize("order_id", ["nonsense", "01JDZZZZZZZZZZZZZZZZZZZZZZ-999999"])
async def test_an_unknown_order_is_not_found(
    client: httpx.AsyncClient, auth: Auth, order_id: str
) -> None:
    assert_problem(await cancel(client, auth.headers(), order_id), 404, "not_found")


async def test_a_cancelled_order_no_longer_counts_against_the_limit(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5, per_user_limit=1)
    order_id = await stored_order(client, auth, app_services, item.id)
    assert_problem(await buy(client, auth, item.id), 409, "limit_exceeded")

    assert (await cancel(client, auth.headers(), order_id)).status_code == 200

    assert (await buy(client, auth, item.id)).status_code == 202


@pytest.mark.parametrize("settings_overrides", [{"sold_out_mark_seconds": 3600.0}])
async def test_a_cancellation_clears_the_sold_out_mark_of_every_process(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    # The mark outlives the test, so only the stock-back message can clear it.
    item = await create_live_item(client, auth, stock=2, per_user_limit=1)
    first = await bought(client, auth, item.id, user_id="u1")
    await bought(client, auth, item.id, user_id="u2")
    assert_problem(await buy(client, auth, item.id, user_id="u3"), 409, "sold_out")
    assert app_services.sold_out.is_sold_out(item.id)
    await store_orders(app_services)

    assert (await cancel(client, auth.headers("u1"), first)).status_code == 200

    await until(lambda: not app_services.sold_out.is_sold_out(item.id))
    assert (await buy(client, auth, item.id, user_id="u3")).status_code == 202


async def test_an_operator_cancels_any_order_and_a_shopper_may_not(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await stored_order(client, auth, app_services, item.id, user_id="owner")
    path = f"/api/v1/admin/orders/{order_id}/cancel"

    assert_problem(await client.post(path, headers=auth.headers("owner")), 403, "forbidden")
    response = await client.post(path, headers=auth.admin())

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert await transitions(app_services, order_id) == [
        ("pending_payment", "cancelled", "operator_cancel")
    ]
    assert await redis_stock(app_services, item.id) == 5
