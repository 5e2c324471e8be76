"""Transitions racing each other end with exactly one winner, and the stock follows the
winner: back exactly once if the order was cancelled, never if it was paid."""

import asyncio

import httpx
import pytest

from app.container import Container
from app.gateways.payment import SimulatedGateway
from tests.support.factories import Auth, assert_problem, create_live_item
from tests.support.lifecycle import (
    books,
    bought,
    order_row,
    redis_stock,
    released_set,
    returns_of,
    store_orders,
    sweeper,
    transitions,
    wait_until_overdue,
)

ORDERS = 40
RACE_SETTINGS = {"payment_timeout_seconds": 1, "timeout_sweep_batch_size": 3}


async def overdue_orders(
    client: httpx.AsyncClient, auth: Auth, services: Container, count: int
) -> tuple[int, list[str]]:
    item = await create_live_item(client, auth, stock=count, per_user_limit=1)
    orders = [await bought(client, auth, item.id, user_id=f"u{n}") for n in range(count)]
    await store_orders(services)
    await wait_until_overdue(services)
    return item.id, orders


@pytest.mark.parametrize("settings_overrides", [RACE_SETTINGS])
async def test_payment_against_the_timeout_has_one_outcome_per_order(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item_id, orders = await overdue_orders(client, auth, app_services, ORDERS)
    # A gateway that takes a moment, so sweeps land between charge and update.
    gateway = SimulatedGateway(sessionmaker=app_services.sessionmaker, latency_seconds=0.001)
    app_services.gateway = gateway

    async def pay(n: int, order_id: str) -> httpx.Response:
        return await client.post(f"/api/v1/orders/{order_id}/pay", headers=auth.headers(f"u{n}"))

    sweep = asyncio.create_task(sweeper(app_services).drain())
    payments = await asyncio.gather(*[pay(n, o) for n, o in enumerate(orders)])
    await sweep

    cancelled = set()
    for order_id, response in zip(orders, payments, strict=True):
        row = await order_row(app_services, order_id)
        charge = gateway.charges.get(order_id)
        if response.status_code == 200:
            assert row.status == "paid"
            assert charge is not None
            assert row.payment_reference == charge.reference
            assert not await gateway.refunded(charge.reference)
            # Paid by the shopper's request, or by the sweep that found the charge
            # before the request could record it (a confirmation not yet come).
            assert await transitions(app_services, order_id) in (
                [("pending_payment", "paid", "payment")],
                [("pending_payment", "paid", "payment_check")],
            )
            assert await returns_of(app_services, order_id) == []
        else:
            assert_problem(response, 409, "invalid_state")
            assert row.status == "cancelled"
            # Charged before losing the race: the money went back.
            assert charge is None or await gateway.refunded(charge.reference)
            assert await transitions(app_services, order_id) == [
                ("pending_payment", "cancelled", "payment_timeout")
            ]
            assert await returns_of(app_services, order_id) == [("released", 0, 1)]
            cancelled.add(order_id)
    assert await released_set(app_services, item_id) == cancelled
    assert await redis_stock(app_services, item_id) == len(cancelled)
    (await books(app_services, item_id)).assert_balanced()


@pytest.mark.parametrize("settings_overrides", [RACE_SETTINGS])
async def test_a_cancel_against_the_timeout_returns_the_stock_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item_id, orders = await overdue_orders(client, auth, app_services, ORDERS)

    async def cancel(n: int, order_id: str) -> httpx.Response:
        return await client.post(f"/api/v1/orders/{order_id}/cancel", headers=auth.headers(f"u{n}"))

    sweep = asyncio.create_task(sweeper(app_services).drain())
    cancels = await asyncio.gather(*[cancel(n, o) for n, o in enumerate(orders)])
    await sweep

    for order_id, response in zip(orders, cancels, strict=True):
        moves = await transitions(app_services, order_id)
        assert len(moves) == 1
        cause = moves[0][2]
        if response.status_code == 200:
            assert cause == "user_cancel"
        else:
            assert_problem(response, 409, "invalid_state")
            assert cause == "payment_timeout"
        assert await returns_of(app_services, order_id) == [("released", 0, 1)]
    assert await redis_stock(app_services, item_id) == ORDERS
    assert await released_set(app_services, item_id) == set(orders)
    (await books(app_services, item_id)).assert_balanced()
