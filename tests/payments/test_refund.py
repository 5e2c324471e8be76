"""Refunds (operators): the money back through the gateway, the units back as for a
cancellation."""

import asyncio
from decimal import Decimal

import httpx

from app.container import Container
from tests.support.factories import Auth, assert_problem, create_live_item
from tests.support.lifecycle import (
    books,
    closing_sale,
    on_hand,
    order_row,
    redis_bought,
    redis_stock,
    returns_of,
    stored_order,
    transitions,
    wait_past,
)
from tests.support.payments import paid_order, simulated


def refund(client: httpx.AsyncClient, auth: Auth, order_id: str) -> "asyncio.Task[httpx.Response]":
    return asyncio.create_task(
        client.post(f"/api/v1/admin/orders/{order_id}/refund", headers=auth.admin())
    )


async def test_a_refund_gives_the_money_and_the_units_back(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5, seckill_price="19.90", per_user_limit=2)
    order_id = await paid_order(client, auth, app_services, item.id, quantity=2)

    response = await refund(client, auth, order_id)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "refunded"
    assert body["refunded_at"] is not None
    reference = body["payment_reference"]
    assert simulated(app_services).refunds == {reference: Decimal("39.80")}
    assert await transitions(app_services, order_id) == [
        ("pending_payment", "paid", "payment"),
        ("paid", "refunded", "refund"),
    ]
    assert await redis_stock(app_services, item.id) == 5
    assert await redis_bought(app_services, item.id) == {}
    assert await returns_of(app_services, order_id) == [("released", 0, 2)]
    (await books(app_services, item.id)).assert_balanced()


async def test_two_refunds_at_once_refund_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await paid_order(client, auth, app_services, item.id)

    responses = await asyncio.gather(*[refund(client, auth, order_id) for _ in range(3)])

    assert sorted(r.status_code for r in responses) == [200, 409, 409]
    assert len(simulated(app_services).refunds) == 1
    assert await redis_stock(app_services, item.id) == 5
    assert len(await returns_of(app_services, order_id)) == 1


async def test_only_paid_orders_are_refunded_and_only_by_operators(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    pending = await stored_order(client, auth, app_services, item.id, user_id="u1")
    paid = await paid_order(client, auth, app_services, item.id)

    assert_problem(await refund(client, auth, pending), 409, "invalid_state")
    by_shopper = await client.post(f"/api/v1/admin/orders/{paid}/refund", headers=auth.headers())
    assert_problem(by_shopper, 403, "forbidden")
    assert_problem(
        await refund(client, auth, "01JDZZZZZZZZZZZZZZZZZZZZZZ-424242"), 404, "not_found"
    )
    assert (await order_row(app_services, pending)).status == "pending_payment"
    assert (await order_row(app_services, paid)).status == "paid"
    assert simulated(app_services).refunds == {}


async def test_a_refund_after_the_sale_restocks_the_warehouse(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item, ends_at = await closing_sale(client, auth, sku="SHORT-2", stock=4, per_user_limit=2)
    order_id = await paid_order(client, auth, app_services, item, quantity=2)
    await wait_past(ends_at)
    before = await on_hand(app_services, "SHORT-2")

    response = await refund(client, auth, order_id)

    assert response.status_code == 200, response.text
    assert await on_hand(app_services, "SHORT-2") == before + 2
    assert await returns_of(app_services, order_id) == [("restocked", 2, 0)]
    assert await redis_stock(app_services, item) == 2
    summary = await books(app_services, item)
    assert (summary.live, summary.restocked) == (0, 2)
    summary.assert_balanced()
