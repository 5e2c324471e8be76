"""Paying an order through the gateway interface (the simulated gateway)."""

import asyncio
from decimal import Decimal

import httpx

from app.container import Container
from app.gateways.payment import DECLINED_TOKEN, Charge, SimulatedGateway
from tests.support.factories import Auth, assert_problem, create_live_item
from tests.support.lifecycle import (
    bought,
    order_row,
    redis_stock,
    store_orders,
    stored_order,
    transitions,
)
from tests.support.payments import notification, notify


class HeldGateway(SimulatedGateway):
    """Charges wait until the test lets them finish, so it can act in between."""

    def __init__(self, services: Container) -> None:
        super().__init__(sessionmaker=services.sessionmaker)
        self.charging = asyncio.Event()
        self.proceed = asyncio.Event()

    async def charge(self, *, order_id: str, amount: Decimal, payment_token: str) -> Charge:
        self.charging.set()
        await self.proceed.wait()
        return await super().charge(order_id=order_id, amount=amount, payment_token=payment_token)


def pay(
    client: httpx.AsyncClient, headers: dict[str, str], order_id: str, token: str | None = None
) -> "asyncio.Future[httpx.Response]":
    body = {"payment_token": token} if token else None
    return asyncio.ensure_future(
        client.post(f"/api/v1/orders/{order_id}/pay", json=body, headers=headers)
    )


async def test_the_owner_pays_and_the_order_is_paid(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5, seckill_price="19.90")
    order_id = await stored_order(client, auth, app_services, item.id, quantity=2)

    response = await pay(client, auth.headers(), order_id)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "paid"
    assert body["paid_at"] is not None
    gateway = app_services.gateway
    assert isinstance(gateway, SimulatedGateway)
    charge = gateway.charges[order_id]
    assert charge.amount == Decimal("39.80")
    assert body["payment_reference"] == charge.reference
    assert await transitions(app_services, order_id) == [("pending_payment", "paid", "payment")]
    assert await redis_stock(app_services, item.id) == 3
    read = await client.get(f"/api/v1/orders/{order_id}", headers=auth.headers())
    assert read.json()["status"] == "paid"


async def test_paying_twice_answers_the_paid_order_and_charges_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await stored_order(client, auth, app_services, item.id)

    first, second = await asyncio.gather(
        pay(client, auth.headers(), order_id), pay(client, auth.headers(), order_id)
    )
    third = await pay(client, auth.headers(), order_id)

    gateway = app_services.gateway
    assert isinstance(gateway, SimulatedGateway)
    assert len(gateway.charges) == 1
    reference = gateway.charges[order_id].reference
    for answer in (first, second, third):
        assert answer.status_code == 200, answer.text
        assert (answer.json()["status"], answer.json()["payment_reference"]) == ("paid", reference)
    assert gateway.refunds == {}, "the charge that paid is never given back"
    assert len(await transitions(app_services, order_id)) == 1


async def test_paying_after_the_gateway_notified_this_charge_answers_the_paid_order(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    gateway = HeldGateway(app_services)
    app_services.gateway = gateway
    item = await create_live_item(client, auth, stock=5, seckill_price="19.90")
    order_id = await stored_order(client, auth, app_services, item.id)

    paying = pay(client, auth.headers(), order_id)
    await gateway.charging.wait()  # the charge is made; its answer is on the way
    # The same charge (charges are idempotent per order), as the gateway knows it
    reference = (
        await SimulatedGateway.charge(
            gateway, order_id=order_id, amount=Decimal("19.90"), payment_token="t"
        )
    ).reference
    # The gateway's notification of this very charge lands before the pay call's answer.
    notified = await notify(client, app_services, notification(order_id, "19.90", reference))
    assert notified.json() == {"outcome": "recorded"}
    gateway.proceed.set()
    answer = await paying

    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["payment_reference"]) == ("paid", reference)
    assert gateway.refunds == {}
    assert await transitions(app_services, order_id) == [
        ("pending_payment", "paid", "payment_callback")
    ]


async def test_paying_an_order_another_charge_paid_is_refused(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5, seckill_price="19.90")
    order_id = await stored_order(client, auth, app_services, item.id)
    # Paid through the gateway by a charge the gateway did not make through this service
    notified = await notify(client, app_services, notification(order_id, "19.90", "gw_other"))
    assert notified.json() == {"outcome": "recorded"}

    answer = await pay(client, auth.headers(), order_id)

    assert_problem(answer, 409, "invalid_state")
    row = await order_row(app_services, order_id)
    assert (row.status, row.payment_reference) == ("paid", "gw_other")
    gateway = app_services.gateway
    assert isinstance(gateway, SimulatedGateway)
    assert await gateway.refunded(gateway.charges[order_id].reference), (
        "the second charge is given back"
    )


async def test_a_queued_order_asks_for_a_retry_then_is_paid(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await bought(client, auth, item.id)

    early = await pay(client, auth.headers(), order_id)

    assert_problem(early, 409, "invalid_state")
    assert early.headers["Retry-After"] == "1"
    gateway = app_services.gateway
    assert isinstance(gateway, SimulatedGateway)
    assert gateway.charges == {}, "nothing is charged for an order not stored yet"
    await store_orders(app_services)
    assert (await pay(client, auth.headers(), order_id)).status_code == 200


async def test_someone_elses_order_is_not_found(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await stored_order(client, auth, app_services, item.id, user_id="owner")

    assert_problem(await pay(client, auth.headers("intruder"), order_id), 404, "not_found")
    # Operators refund and cancel; paying is the owner's.
    assert_problem(await pay(client, auth.admin(), order_id), 404, "not_found")
    assert (await order_row(app_services, order_id)).status == "pending_payment"


async def test_a_declined_payment_leaves_the_order_pending(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await stored_order(client, auth, app_services, item.id)

    response = await pay(client, auth.headers(), order_id, token=DECLINED_TOKEN)

    assert_problem(response, 402, "payment_declined")
    assert (await order_row(app_services, order_id)).status == "pending_payment"
    assert await transitions(app_services, order_id) == []
    assert (await pay(client, auth.headers(), order_id)).status_code == 200


async def test_a_cancelled_order_cannot_be_paid(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await stored_order(client, auth, app_services, item.id)
    cancel = await client.post(f"/api/v1/orders/{order_id}/cancel", headers=auth.headers())
    assert cancel.status_code == 200

    response = await pay(client, auth.headers(), order_id)

    body = assert_problem(response, 409, "invalid_state")
    assert body["order_status"] == "cancelled"
    gateway = app_services.gateway
    assert isinstance(gateway, SimulatedGateway)
    assert gateway.charges == {}


async def test_a_charge_that_loses_to_a_cancellation_is_given_back(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await stored_order(client, auth, app_services, item.id)
    gateway = HeldGateway(app_services)
    app_services.gateway = gateway

    paying = pay(client, auth.headers(), order_id)
    await gateway.charging.wait()
    cancel = await client.post(f"/api/v1/orders/{order_id}/cancel", headers=auth.headers())
    gateway.proceed.set()
    response = await paying

    assert cancel.status_code == 200, cancel.text
    assert_problem(response, 409, "invalid_state")
    charge = gateway.charges[order_id]
    assert gateway.refunds == {charge.reference: charge.amount}
    row = await order_row(app_services, order_id)
    assert (row.status, row.payment_reference, row.paid_at) == ("cancelled", None, None)
    assert await redis_stock(app_services, item.id) == 5
