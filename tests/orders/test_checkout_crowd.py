"""A crowd checking out the same SKUs at once (a first-N promotion): every answer is 201
or 409 insufficient_stock, never a deadlock's 500, and the stock comes out exact."""

import asyncio
from typing import Any

import httpx
from sqlalchemy import text

from app.container import Container
from tests.support.coupons import create_sku
from tests.support.factories import Auth, assert_problem
from tests.support.lifecycle import on_hand

CROWD = 100


async def checkout(
    client: httpx.AsyncClient, auth: Auth, user: str, lines: list[tuple[str, int]]
) -> httpx.Response:
    body: dict[str, Any] = {"items": [{"sku": sku, "quantity": q} for sku, q in lines]}
    return await client.post("/api/v1/orders", json=body, headers=auth.headers(user))


async def units_ordered(services: Container) -> dict[str, int]:
    """Units of every SKU on the stored orders' lines (the ledger's `sold` rows agree)."""
    async with services.sessionmaker() as session:
        lines = await session.execute(
            text("SELECT sku, sum(quantity) FROM order_lines GROUP BY sku")
        )
        sold = await session.execute(
            text("SELECT sku, -sum(on_hand_delta) FROM inventory_ledger "
                 "WHERE reason = 'sold' GROUP BY sku")
        )  # fmt: skip
        on_lines = {sku: int(units) for sku, units in lines}
        assert {sku: int(units) for sku, units in sold} == on_lines
    return on_lines


def assert_refused_or_placed(answers: list[httpx.Response]) -> list[dict[str, Any]]:
    """Every answer is a placed order or a refusal for stock; returns the orders."""
    placed = []
    for answer in answers:
        if answer.status_code == 201:
            placed.append(answer.json())
        else:
            assert_problem(answer, 409, "insufficient_stock")
    return placed


async def test_a_crowd_on_one_sku_sells_exactly_the_stock(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    stock = 120
    await create_sku(client, auth, "PROMO", price="9.90", on_hand=stock)
    # One and two units in turn: 150 units asked for, 120 on hand.
    wanted = [1 + n % 2 for n in range(CROWD)]

    answers = await asyncio.gather(
        *(checkout(client, auth, f"buyer-{n}", [("PROMO", q)]) for n, q in enumerate(wanted))
    )

    placed = assert_refused_or_placed(list(answers))
    sold = sum(order["quantity"] for order in placed)
    # Nobody was refused while their units were still there: the stock ran out.
    assert stock - sold < 2
    assert await on_hand(app_services, "PROMO") == stock - sold
    assert await units_ordered(app_services) == {"PROMO": sold}


async def test_two_skus_in_opposite_line_orders_do_not_deadlock(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    stock = 30
    await create_sku(client, auth, "BREAD", price="2.50", on_hand=stock)
    await create_sku(client, auth, "JAM", price="4.00", on_hand=stock)
    forward, backward = [("BREAD", 1), ("JAM", 1)], [("JAM", 1), ("BREAD", 1)]

    answers = await asyncio.gather(
        *(checkout(client, auth, f"buyer-{n}", forward if n % 2 else backward)
          for n in range(CROWD // 2))
    )  # fmt: skip

    placed = assert_refused_or_placed(list(answers))
    assert len(placed) == stock
    assert await on_hand(app_services, "BREAD") == 0
    assert await on_hand(app_services, "JAM") == 0
    assert await units_ordered(app_services) == {"BREAD": stock, "JAM": stock}
