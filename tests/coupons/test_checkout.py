"""Quote and regular checkout: prices, stock, the coupon used once and given back once."""

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.container import Container
from tests.support.coupons import claim, create_coupon, create_sku
from tests.support.factories import Auth, assert_problem, buy, create_live_item
from tests.support.lifecycle import (
    on_hand,
    order_row,
    returns_of,
    store_orders,
    sweeper,
    wait_until_overdue,
)

D = Decimal


async def claimed(client: httpx.AsyncClient, auth: Auth, coupon_id: int, user: str) -> str:
    response = await claim(client, auth, coupon_id, user_id=user)
    assert response.status_code == 201, response.text
    claim_id: str = response.json()["id"]
    return claim_id


def body(items: dict[str, int], coupon: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"items": [{"sku": s, "quantity": q} for s, q in items.items()]}
    if coupon is not None:
        data["coupon"] = coupon
    return data


async def quote(
    client: httpx.AsyncClient,
    auth: Auth,
    items: dict[str, int],
    coupon: str | None = None,
    user: str = "shopper-1",
) -> httpx.Response:
    return await client.post(
        "/api/v1/orders/quote", json=body(items, coupon), headers=auth.headers(user)
    )  # fmt: skip


async def checkout(
    client: httpx.AsyncClient,
    auth: Auth,
    items: dict[str, int],
    coupon: str | None = None,
    user: str = "shopper-1",
    key: str | None = None,
) -> httpx.Response:
    headers = auth.headers(user)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post("/api/v1/orders", json=body(items, coupon), headers=headers)


async def coupon_status(services: Container, claim_id: str) -> tuple[str, str | None]:
    await store_orders(services)  # the claim, if the order writer has not stored it yet
    async with services.sessionmaker() as session:
        row = (
            await session.execute(
                text("SELECT status, order_id FROM user_coupons WHERE id = :id"), {"id": claim_id}
            )
        ).one()
    return row[0], row[1]


@pytest.mark.parametrize(
    ("price", "quantity", "status", "discount"),
    [("299.99", 1, 422, None), ("300.00", 1, 200, "50.00"), ("500.00", 2, 200, "50.00")],
)
async def test_quote_300_off_50(
    client: httpx.AsyncClient, auth: Auth, price: str, quantity: int, status: int,
    discount: str | None,
) -> None:  # fmt: skip
    await create_sku(client, auth, "RICE", price=price, category="food")
    coupon = await create_coupon(client, auth)
    claim_id = await claimed(client, auth, coupon.id, "shopper-1")
    response = await quote(client, auth, {"RICE": quantity}, claim_id)
    if status == 422:
        problem = assert_problem(response, 422, "coupon_not_applicable")
        assert problem["reason"] == "below_threshold"
        assert "threshold" in problem["detail"]
        return
    assert response.status_code == 200, response.text
    got = response.json()
    subtotal = D(price) * quantity
    assert (D(got["subtotal"]), D(got["discount"]), D(got["total"])) == (
        subtotal, D(str(discount)), subtotal - D(str(discount)),
    )  # fmt: skip
    assert got["lines"] == [
        {"sku": "RICE", "name": "Rice", "quantity": quantity, "unit_price": price,
         "amount": str(subtotal), "eligible": True}
    ]  # fmt: skip


async def test_percent_capped_and_scoped_by_category(client: httpx.AsyncClient, auth: Auth) -> None:
    await create_sku(client, auth, "RICE", price="400.00", category="food")
    await create_sku(client, auth, "TV", price="3000.00", category="tv")
    coupon = await create_coupon(
        client, auth, kind="percent_off", amount_off=None, percent_off=15, max_discount="100",
        min_spend=None, scope={"categories": ["food"]},
    )  # fmt: skip
    claim_id = await claimed(client, auth, coupon.id, "shopper-1")
    got = (await quote(client, auth, {"RICE": 1, "TV": 1}, claim_id)).json()
    assert (got["subtotal"], got["eligible_subtotal"], got["discount"], got["total"]) == (
        "3400.00", "400.00", "60.00", "3340.00",
    )  # fmt: skip
    got = (await quote(client, auth, {"RICE": 2}, claim_id)).json()
    assert got["discount"] == "100.00"  # 120 capped at 100
    problem = assert_problem(await quote(client, auth, {"TV": 1}, claim_id), 422,
                             "coupon_not_applicable")  # fmt: skip
    assert problem["reason"] == "out_of_scope"


async def test_checkout_takes_stock_and_uses_the_coupon(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="150.00", category="food", on_hand=10)
    await create_sku(client, auth, "OIL", price="99.99", category="food", on_hand=5)
    coupon = await create_coupon(client, auth)
    claim_id = await claimed(client, auth, coupon.id, "shopper-1")

    response = await checkout(client, auth, {"RICE": 2, "OIL": 1}, claim_id)

    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "pending_payment"
    assert order["kind"] == "regular"
    assert (order["subtotal"], order["discount"], order["total"]) == ("399.99", "50.00", "349.99")
    assert order["amount"] == "349.99"
    assert order["coupon"] == claim_id
    assert [(line["sku"], line["quantity"]) for line in order["lines"]] == [("OIL", 1), ("RICE", 2)]
    assert (await on_hand(app_services, "RICE"), await on_hand(app_services, "OIL")) == (8, 4)
    assert await coupon_status(app_services, claim_id) == ("used", order["id"])
    read = await client.get(f"/api/v1/orders/{order['id']}", headers=auth.headers())
    assert read.json() == order
    mine = (await client.get("/api/v1/me/coupons", headers=auth.headers())).json()
    assert [(c["id"], c["status"], c["order_id"]) for c in mine] == [
        (claim_id, "used", order["id"])
    ]
    # Used: a second order cannot take it.
    problem = assert_problem(await checkout(client, auth, {"RICE": 2}, claim_id), 422,
                             "coupon_not_applicable")  # fmt: skip
    assert problem["reason"] == "already_used"
    # And the order pays its total; paying again answers the same paid order, lines too.
    paid = await client.post(f"/api/v1/orders/{order['id']}/pay", headers=auth.headers())
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    again = await client.post(f"/api/v1/orders/{order['id']}/pay", headers=auth.headers())
    assert again.status_code == 200, again.text
    assert again.json() == paid.json()


async def test_short_stock_takes_nothing(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="150.00", on_hand=10)
    await create_sku(client, auth, "OIL", price="200.00", on_hand=1)
    coupon = await create_coupon(client, auth)
    claim_id = await claimed(client, auth, coupon.id, "shopper-1")
    problem = assert_problem(
        await checkout(client, auth, {"RICE": 2, "OIL": 2}, claim_id), 409, "insufficient_stock"
    )
    assert problem["short"] == [{"sku": "OIL", "available": 1, "requested": 2}]
    assert (await on_hand(app_services, "RICE"), await on_hand(app_services, "OIL")) == (10, 1)
    assert (await coupon_status(app_services, claim_id))[0] == "available"
    async with app_services.sessionmaker() as session:
        assert await session.scalar(text("SELECT count(*) FROM orders")) == 0


async def test_refusals_say_why(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="500.00")
    coupon = await create_coupon(client, auth, per_user_limit=2)
    mine = await claimed(client, auth, coupon.id, "shopper-1")
    theirs = await claimed(client, auth, coupon.id, "shopper-2")
    problem = assert_problem(await quote(client, auth, {"RICE": 1}, theirs), 422,
                             "coupon_not_applicable")  # fmt: skip
    assert problem["reason"] == "not_yours"
    problem = assert_problem(await quote(client, auth, {"RICE": 1}, "01ABCDEFGHJKMNPQRSTVWXYZ00-1"),
                             422, "coupon_not_applicable")  # fmt: skip
    assert problem["reason"] == "not_yours"
    # Expiring mid-flow: quoted while valid, expired by the time of the order.
    assert (await quote(client, auth, {"RICE": 1}, mine)).status_code == 200
    await store_orders(app_services)
    async with app_services.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE user_coupons SET valid_until = now() - interval '1 second' WHERE id = :i"),
            {"i": mine},
        )
    problem = assert_problem(await checkout(client, auth, {"RICE": 1}, mine), 422,
                             "coupon_not_applicable")  # fmt: skip
    assert problem["reason"] == "expired"
    listed = (await client.get("/api/v1/me/coupons", headers=auth.headers())).json()
    assert [c["status"] for c in listed] == ["expired"]
    assert await on_hand(app_services, "RICE") == 100


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([], "items"),
        ([{"sku": "RICE", "quantity": 0}], "items.0.quantity"),
        ([{"sku": "RICE", "quantity": "2"}], "items.0.quantity"),
        ([{"sku": "RICE"}, {"sku": "RICE"}], "items"),
        ([{"sku": "NOPE"}], "items.0.sku"),
        ([{"sku": "NOPRICE"}], "items.0.sku"),
        ([{"sku": "bad sku"}], "items.0.sku"),
        ([{"sku": "HUGE", "quantity": 100_000_000}], "items"),  # subtotal beyond any order
        ([{"sku": f"S{n}", "quantity": 100_000_000} for n in range(2)], "items"),  # units
    ],
)
async def test_bad_orders_are_422(
    client: httpx.AsyncClient, auth: Auth, items: list[dict[str, Any]], field: str
) -> None:
    await create_sku(client, auth, "RICE", price="1.00")
    await create_sku(client, auth, "HUGE", price="9999999999.99", on_hand=1)
    response = await client.post(
        "/api/v1/admin/skus", json={"sku": "NOPRICE", "name": "x"}, headers=auth.admin()
    )
    assert response.status_code == 201
    for path in ("/api/v1/orders/quote", "/api/v1/orders"):
        response = await client.post(path, json={"items": items}, headers=auth.headers())
        problem = assert_problem(response, 422, "validation_error")
        assert field in {e["field"] for e in problem["errors"]}, problem


async def test_idempotent_checkout(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="10.00", on_hand=10)
    answers = await asyncio.gather(
        *(checkout(client, auth, {"RICE": 2}, key="k-1") for _ in range(5))
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert await on_hand(app_services, "RICE") == 8


async def test_concurrent_double_redemption_makes_one_order(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="400.00", on_hand=100)
    coupon = await create_coupon(client, auth)
    claim_id = await claimed(client, auth, coupon.id, "shopper-1")

    answers = await asyncio.gather(
        *(checkout(client, auth, {"RICE": 1}, claim_id) for _ in range(10))
    )

    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [422] * 9, [a.text for a in answers]
    assert {a.json()["reason"] for a in answers if a.status_code == 422} == {"already_used"}
    async with app_services.sessionmaker() as session:
        assert await session.scalar(text("SELECT count(*) FROM orders")) == 1
    assert await on_hand(app_services, "RICE") == 99


async def test_cancel_gives_stock_and_coupon_back_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="400.00", on_hand=10)
    coupon = await create_coupon(client, auth)
    claim_id = await claimed(client, auth, coupon.id, "shopper-1")
    order = (await checkout(client, auth, {"RICE": 3}, claim_id)).json()

    answers = await asyncio.gather(
        *(client.post(f"/api/v1/orders/{order['id']}/cancel", headers=auth.headers())
          for _ in range(4))
    )  # fmt: skip

    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
    assert await on_hand(app_services, "RICE") == 10
    assert await coupon_status(app_services, claim_id) == ("available", None)
    assert await returns_of(app_services, order["id"]) == [("restocked", 3, 0)]
    assert (await order_row(app_services, order["id"])).stock_returned_at is not None
    # The sweep finds nothing more to return.
    assert (await sweeper(app_services).drain()).returned == 0
    # The coupon works again.
    again = await checkout(client, auth, {"RICE": 1}, claim_id)
    assert again.status_code == 201, again.text


@pytest.mark.parametrize("settings_overrides", [{"payment_timeout_seconds": 1}])
async def test_timeout_gives_stock_and_coupon_back_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="400.00", on_hand=10)
    coupon = await create_coupon(client, auth)
    claim_id = await claimed(client, auth, coupon.id, "shopper-1")
    order = (await checkout(client, auth, {"RICE": 3}, claim_id)).json()
    await wait_until_overdue(app_services)

    results = await asyncio.gather(*(sweeper(app_services).drain() for _ in range(3)))

    assert sum(r.cancelled for r in results) == 1
    assert sum(r.returned for r in results) == 1
    assert (await order_row(app_services, order["id"])).status == "cancelled"
    assert await on_hand(app_services, "RICE") == 10
    assert await coupon_status(app_services, claim_id) == ("available", None)
    assert await returns_of(app_services, order["id"]) == [("restocked", 3, 0)]


async def test_seckill_purchase_with_a_coupon_is_refused(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    item = await create_live_item(client, auth)
    response = await client.post(
        f"/api/v1/items/{item.id}/purchase",
        json={"quantity": 1, "coupon": "01ABCDEFGHJKMNPQRSTVWXYZ00-1"},
        headers=auth.headers(),
    )
    problem = assert_problem(response, 422, "coupon_not_applicable")
    assert problem["reason"] == "seckill"
    assert (await buy(client, auth, item.id)).status_code == 202
    read = await client.get(f"/api/v1/items/{item.id}")
    assert read.json()["remaining"] == 99  # the refused attempt took nothing


async def test_refund_gives_stock_and_coupon_back(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="400.00", on_hand=10)
    coupon = await create_coupon(client, auth)
    claim_id = await claimed(client, auth, coupon.id, "shopper-1")
    order = (await checkout(client, auth, {"RICE": 2}, claim_id)).json()
    paid = await client.post(f"/api/v1/orders/{order['id']}/pay", headers=auth.headers())
    assert paid.json()["status"] == "paid"
    assert paid.json()["amount"] == "750.00"
    refunded = await client.post(f"/api/v1/admin/orders/{order['id']}/refund", headers=auth.admin())
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["status"] == "refunded"
    assert await on_hand(app_services, "RICE") == 10
    assert await coupon_status(app_services, claim_id) == ("available", None)


async def test_a_sales_sku_gets_a_price_for_checkout(client: httpx.AsyncClient, auth: Auth) -> None:
    item = await create_live_item(client, auth, sku="PHONE-9", stock=5)
    assert item.sku == "PHONE-9"
    response = await client.post(
        "/api/v1/admin/skus", json={"sku": "PHONE-9", "name": "x"}, headers=auth.admin()
    )
    assert_problem(response, 409, "already_exists")
    patch = await client.patch(
        "/api/v1/admin/skus/PHONE-9",
        json={"price": "2999.00", "category": "phone"},
        headers=auth.admin(),
    )
    assert patch.status_code == 200, patch.text
    assert (patch.json()["price"], patch.json()["category"]) == ("2999.00", "phone")
    no_price = await client.patch(
        "/api/v1/admin/skus/PHONE-9", json={"price": None}, headers=auth.admin()
    )
    assert_problem(no_price, 422, "validation_error")
    assert_problem(
        await client.patch("/api/v1/admin/skus/NOPE", json={"price": "1"}, headers=auth.admin()),
        404, "not_found",
    )  # fmt: skip
    got = await quote(client, auth, {"PHONE-9": 1})
    assert got.json()["total"] == "2999.00"
