"""The payment gateway's signed notifications, as tests send them."""

import json
from typing import Any

import httpx

from app.container import Container
from app.gateways.payment import SimulatedGateway
from app.payments.signatures import SIGNATURE_HEADER, sign
from tests.support.factories import Auth
from tests.support.lifecycle import stored_order

CALLBACK = "/api/v1/payments/callback"


def simulated(services: Container) -> SimulatedGateway:
    """The tests' gateway (its charges and refunds)."""
    assert isinstance(services.gateway, SimulatedGateway)
    return services.gateway


def notification(order_id: str, amount: str, reference: str = "gw_1001", **extra: Any) -> bytes:
    body = {"order_id": order_id, "reference": reference, "amount": amount, "status": "succeeded"}
    return json.dumps({**body, **extra}).encode()


def notify(
    client: httpx.AsyncClient, services: Container, body: bytes, *, signature: str | None = None
) -> Any:
    secret = services.settings.payment_webhook_secret.get_secret_value()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature if signature is not None else sign(secret, body),
    }
    return client.post(CALLBACK, content=body, headers=headers)


async def pay(client: httpx.AsyncClient, headers: dict[str, str], order_id: str) -> httpx.Response:
    """The owner (`headers`) pays the order through the API."""
    return await client.post(f"/api/v1/orders/{order_id}/pay", headers=headers)


async def refund(
    client: httpx.AsyncClient, admin_headers: dict[str, str], order_id: str
) -> httpx.Response:
    """An operator (`admin_headers`) refunds the order through the API."""
    return await client.post(f"/api/v1/admin/orders/{order_id}/refund", headers=admin_headers)


async def paid_order(
    client: httpx.AsyncClient,
    auth: Auth,
    services: Container,
    item_id: int,
    *,
    user_id: str = "shopper-1",
    quantity: int = 1,
    member: bool = False,
) -> str:
    """Buy through the API (`member`: as a member), store the order and pay it as its
    owner: it is `paid`."""
    order_id = await stored_order(
        client, auth, services, item_id, user_id=user_id, quantity=quantity, member=member
    )
    response = await pay(client, auth.headers(user_id, member=member), order_id)
    assert response.status_code == 200, response.text
    return order_id
