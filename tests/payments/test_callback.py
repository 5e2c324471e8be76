"""The gateway's signed notification: authenticated, idempotent, and refusing amounts
that are not the order's."""

import asyncio
import json
from decimal import Decimal

import httpx
import pytest

from app.container import Container
from app.gateways.payment import SimulatedGateway
from app.payments.signatures import sign
from tests.support.factories import Auth, assert_problem, create_live_item
from tests.support.lifecycle import bought, order_row, redis_stock, stored_order, transitions
from tests.support.payments import CALLBACK, notification, notify


async def pending_order(client: httpx.AsyncClient, auth: Auth, services: Container) -> str:
    item = await create_live_item(client, auth, stock=5, seckill_price="19.90")
    return await stored_order(client, auth, services, item.id, quantity=2)


async def test_a_signed_notification_marks_the_order_paid(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    order_id = await pending_order(client, auth, app_services)

    response = await notify(client, app_services, notification(order_id, "39.80"))

    assert response.status_code == 200, response.text
    assert response.json() == {"outcome": "recorded"}
    row = await order_row(app_services, order_id)
    assert (row.status, row.payment_reference) == ("paid", "gw_1001")
    assert await transitions(app_services, order_id) == [
        ("pending_payment", "paid", "payment_callback")
    ]


async def test_the_same_notification_twice_changes_nothing(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    order_id = await pending_order(client, auth, app_services)
    body = notification(order_id, "39.80")
    assert (await notify(client, app_services, body)).status_code == 200
    paid_at = (await order_row(app_services, order_id)).paid_at

    again = await notify(client, app_services, body)

    assert again.status_code == 200, again.text
    assert again.json() == {"outcome": "duplicate"}
    assert (await order_row(app_services, order_id)).paid_at == paid_at
    assert len(await transitions(app_services, order_id)) == 1


async def test_a_notification_delivered_twice_at_once_is_recorded_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    order_id = await pending_order(client, auth, app_services)
    body = notification(order_id, "39.80")

    responses = await asyncio.gather(*[notify(client, app_services, body) for _ in range(5)])

    assert {r.status_code for r in responses} == {200}
    outcomes = sorted(r.json()["outcome"] for r in responses)
    assert outcomes == ["duplicate"] * 4 + ["recorded"]
    assert len(await transitions(app_services, order_id)) == 1


@pytest.mark.parametrize(
    "signature",
    ["", "sha256=" + "0" * 64, "md5=abc", "not-even-a-scheme"],
    ids=["empty", "wrong-digest", "wrong-scheme", "garbage"],
)
async def test_a_bad_signature_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, signature: str
) -> None:
    order_id = await pending_order(client, auth, app_services)

    response = await notify(
        client, app_services, notification(order_id, "39.80"), signature=signature
    )

    assert_problem(response, 401, "invalid_signature")
    assert (await order_row(app_services, order_id)).status == "pending_payment"
    assert await transitions(app_services, order_id) == []


async def test_a_signature_of_another_body_is_refused(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    order_id = await pending_order(client, auth, app_services)
    secret = app_services.settings.payment_webhook_secret.get_secret_value()
    # Signed for one cent, sent claiming the full amount.
    signature = sign(secret, notification(order_id, "0.01"))

    response = await notify(
        client, app_services, notification(order_id, "39.80"), signature=signature
    )

    assert_problem(response, 401, "invalid_signature")
    assert (await order_row(app_services, order_id)).status == "pending_payment"


async def test_a_missing_signature_is_refused(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    order_id = await pending_order(client, auth, app_services)

    response = await client.post(CALLBACK, content=notification(order_id, "39.80"))

    assert_problem(response, 401, "invalid_signature")


@pytest.mark.parametrize("amount", ["39.79", "19.90", "398.00"])
async def test_a_wrong_amount_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, amount: str
) -> None:
    order_id = await pending_order(client, auth, app_services)

    response = await notify(client, app_services, notification(order_id, amount))

    assert_problem(response, 409, "amount_mismatch")
    row = await order_row(app_services, order_id)
    assert (row.status, row.payment_reference) == ("pending_payment", None)
    assert await transitions(app_services, order_id) == []
    gateway = app_services.gateway
    assert isinstance(gateway, SimulatedGateway)
    assert gateway.refunds == {}


async def test_a_failed_charge_is_acknowledged_and_changes_nothing(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    order_id = await pending_order(client, auth, app_services)

    response = await notify(client, app_services, notification(order_id, "39.80", status="failed"))

    assert response.json() == {"outcome": "ignored"}
    assert (await order_row(app_services, order_id)).status == "pending_payment"


async def test_a_payment_for_a_cancelled_order_is_refunded(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    order_id = await pending_order(client, auth, app_services)
    cancel = await client.post(f"/api/v1/orders/{order_id}/cancel", headers=auth.headers())
    assert cancel.status_code == 200
    body = notification(order_id, "39.80", reference="gw_late")

    first = await notify(client, app_services, body)
    second = await notify(client, app_services, body)

    # Answered 200: a 409 would have the gateway retry a notification nothing can apply.
    assert (first.status_code, first.json()) == (200, {"outcome": "refunded"})
    assert (second.status_code, second.json()) == (200, {"outcome": "refunded"})
    gateway = app_services.gateway
    assert isinstance(gateway, SimulatedGateway)
    assert gateway.refunds == {"gw_late": Decimal("39.80")}, "given back once"
    assert await gateway.refunded("gw_late")
    assert (await order_row(app_services, order_id)).status == "cancelled"


async def test_a_queued_order_asks_the_gateway_to_retry(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5, seckill_price="19.90")
    order_id = await bought(client, auth, item.id)

    response = await notify(client, app_services, notification(order_id, "19.90"))

    assert_problem(response, 409, "invalid_state")
    assert response.headers["Retry-After"] == "1"
    assert await redis_stock(app_services, item.id) == 4


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"order_id": "x"}',
        json.dumps(
            {"order_id": "x", "reference": "r", "amount": "-1", "status": "succeeded"}
        ).encode(),
    ],
    ids=["malformed", "incomplete", "negative-amount"],
)
async def test_a_signed_but_malformed_notification_is_a_validation_problem(
    client: httpx.AsyncClient, app_services: Container, body: bytes
) -> None:
    assert_problem(await notify(client, app_services, body), 422, "validation_error")


@pytest.mark.parametrize("reference", ["gw\x001001", "\x00"], ids=["inner-nul", "only-nul"])
async def test_a_signed_reference_postgres_cannot_store_is_a_validation_problem(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, reference: str
) -> None:
    order_id = await pending_order(client, auth, app_services)

    response = await notify(client, app_services, notification(order_id, "39.80", reference))

    problem = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in problem["errors"]] == ["reference"]
    row = await order_row(app_services, order_id)
    assert (row.status, row.payment_reference) == ("pending_payment", None)
    assert await transitions(app_services, order_id) == []


async def test_an_unknown_order_is_not_found(
    client: httpx.AsyncClient, app_services: Container
) -> None:
    body = notification("01JDZZZZZZZZZZZZZZZZZZZZZZ-424242", "1.00")
    assert_problem(await notify(client, app_services, body), 404, "not_found")
