"""The two payment races the settlement file would expose: a charge whose confirmation
was lost (the sweep asks the gateway before it cancels), and a confirmation that comes
after the order was cancelled (the charge is refunded once, answered 200)."""

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select

from app.audit_log.models import OperatorAction
from app.container import Container
from app.gateways.payment import SimulatedGateway
from tests.support.factories import Auth, create_live_item
from tests.support.lifecycle import (
    order_row,
    stored_order,
    sweeper,
    transitions,
    wait_until_overdue,
)
from tests.support.payments import notification, notify

SHORT_TIMEOUT = {"payment_timeout_seconds": 1}
EVER, NEVER = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def simulated(services: Container) -> SimulatedGateway:
    assert isinstance(services.gateway, SimulatedGateway)
    return services.gateway


async def given_back(services: Container, order_id: str) -> int:
    async with services.sessionmaker() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(OperatorAction)
            .where(
                OperatorAction.action == "payment.given_back",
                OperatorAction.target == f"order:{order_id}",
            )
        )
    return int(found or 0)


@pytest.mark.parametrize("settings_overrides", [SHORT_TIMEOUT])
async def test_a_lost_confirmation_is_repaired_by_the_sweep_before_it_cancels(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5, seckill_price="19.90")
    charged = await stored_order(client, auth, app_services, item.id, user_id="u1")
    unpaid = await stored_order(client, auth, app_services, item.id, user_id="u2")
    gateway = simulated(app_services)
    # Charged through the gateway, and the webhook never comes.
    charge = await gateway.charge(
        order_id=charged, amount=(await order_row(app_services, charged)).amount, payment_token="t"
    )
    await wait_until_overdue(app_services)

    await sweeper(app_services).drain()

    row = await order_row(app_services, charged)
    assert (row.status, row.payment_reference) == ("paid", charge.reference)
    assert await transitions(app_services, charged) == [
        ("pending_payment", "paid", "payment_check")
    ]
    assert (await order_row(app_services, unpaid)).status == "cancelled"
    # The lost webhook arrives after all: nothing changes, nothing is refunded.
    late = await notify(
        client, app_services, notification(charged, f"{row.amount}", reference=charge.reference)
    )
    assert late.json() == {"outcome": "duplicate"}
    assert not await gateway.refunded(charge.reference)
    assert await transitions(app_services, charged) == [
        ("pending_payment", "paid", "payment_check")
    ]


@pytest.mark.parametrize("settings_overrides", [SHORT_TIMEOUT])
async def test_a_late_confirmation_after_the_timeout_is_refunded_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5, seckill_price="19.90")
    order_id = await stored_order(client, auth, app_services, item.id)
    await wait_until_overdue(app_services)
    await sweeper(app_services).drain()
    assert (await order_row(app_services, order_id)).status == "cancelled"
    gateway = simulated(app_services)
    # The gateway charged after the sweep had asked (a slow card), then notified twice.
    charge = await gateway.charge(
        order_id=order_id,
        amount=(await order_row(app_services, order_id)).amount,
        payment_token="t",
    )
    body = notification(order_id, f"{charge.amount}", reference=charge.reference)

    first = await notify(client, app_services, body)
    second = await notify(client, app_services, body)

    assert (first.status_code, first.json()) == (200, {"outcome": "refunded"})
    assert (second.status_code, second.json()) == (200, {"outcome": "refunded"})
    assert await gateway.refunded(charge.reference)
    settled = await gateway.settlement(since=EVER, until=NEVER)
    refunds = [e for e in settled if e.kind == "refund" and e.charge_id == charge.reference]
    assert len(refunds) == 1, "refunded once"
    assert await given_back(app_services, order_id) == 1, "recorded once"
    row = await order_row(app_services, order_id)
    assert (row.status, row.payment_reference) == ("cancelled", None)


@pytest.mark.parametrize("settings_overrides", [SHORT_TIMEOUT])
async def test_the_sweep_and_the_webhook_racing_pay_once_and_refund_nothing(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=20, seckill_price="19.90")
    orders = [
        await stored_order(client, auth, app_services, item.id, user_id=f"u{n}") for n in range(8)
    ]
    gateway = simulated(app_services)
    charges = [
        await gateway.charge(
            order_id=o, amount=(await order_row(app_services, o)).amount, payment_token="t"
        )
        for o in orders
    ]
    await wait_until_overdue(app_services)

    answers = await asyncio.gather(
        sweeper(app_services).drain(),
        *[
            notify(
                client, app_services, notification(c.order_id, f"{c.amount}", reference=c.reference)
            )
            for c in charges
        ],
    )

    for answer in answers[1:]:
        assert isinstance(answer, httpx.Response)
        assert answer.json()["outcome"] in ("recorded", "duplicate")
    for charge in charges:
        row = await order_row(app_services, charge.order_id)
        assert (row.status, row.payment_reference) == ("paid", charge.reference)
        assert len(await transitions(app_services, charge.order_id)) == 1
        assert not await gateway.refunded(charge.reference)
