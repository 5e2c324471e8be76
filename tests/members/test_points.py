"""Points: a paid order earns one per whole unit paid (members' orders times the
multiplier), a refund takes them back; once per order however the order is paid or
refunded, and the balance never goes below zero."""

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.container import Container
from app.errors import ValidationFailed
from app.gateways.payment import SimulatedGateway
from app.members import points_service
from tests.support.factories import Auth, assert_problem, create_live_item
from tests.support.lifecycle import stored_order
from tests.support.members import my_points, point_books
from tests.support.payments import notification, notify, paid_order, pay, refund


def ledger(body: dict[str, object]) -> list[tuple[object, ...]]:
    entries = body["entries"]
    assert isinstance(entries, list)
    return [(e["reason"], e["points"], e["shortfall"]) for e in entries]


async def test_a_paid_order_earns_its_whole_units_and_a_refund_takes_them_back(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, seckill_price="19.90", per_user_limit=5)
    order_id = await paid_order(client, auth, app_services, item.id, quantity=2)  # 39.80

    earned = await my_points(client, auth, "shopper-1")
    assert earned["balance"] == 39
    [entry] = earned["entries"]
    assert entry["order_id"] == order_id
    assert entry["reference"] == order_id
    assert (entry["reason"], entry["points"]) == ("order_paid", 39)

    assert (await refund(client, auth.admin(), order_id)).status_code == 200
    after = await my_points(client, auth, "shopper-1")
    assert after["balance"] == 0
    assert ledger(after) == [("order_refunded", -39, 0), ("order_paid", 39, 0)]
    assert await point_books(app_services) == {"shopper-1": (0, 0)}


@pytest.mark.parametrize("settings_overrides", [{}, {"member_points_multiplier": 3}])
async def test_a_members_order_earns_times_the_multiplier_whoever_settles_it(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, settings_overrides: Any
) -> None:
    multiplier = settings_overrides.get("member_points_multiplier", 2)
    item = await create_live_item(client, auth, stock=10, seckill_price="19.90", per_user_limit=5)
    # Paid by the shopper with a member's token, and by the gateway's webhook (no token):
    # the order's snapshot decides, not who settles it.
    await paid_order(client, auth, app_services, item.id, user_id="vip", member=True)
    notified = await stored_order(client, auth, app_services, item.id, user_id="vip", member=True)
    body = notification(notified, "19.90", "gw_vip")
    assert (await notify(client, app_services, body)).json() == {"outcome": "recorded"}
    # An order the same shopper placed without a member's token earns once.
    await paid_order(client, auth, app_services, item.id, user_id="vip")

    points = await my_points(client, auth, "vip")
    assert [e["points"] for e in points["entries"]] == [19, 19 * multiplier, 19 * multiplier]
    assert points["balance"] == 19 + 2 * 19 * multiplier


async def test_under_one_unit_paid_earns_nothing(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, seckill_price="0.99")
    order_id = await paid_order(client, auth, app_services, item.id)
    assert await my_points(client, auth, "shopper-1") == {"balance": 0, "entries": []}
    assert (await refund(client, auth.admin(), order_id)).status_code == 200
    assert await my_points(client, auth, "shopper-1") == {"balance": 0, "entries": []}


async def test_paying_notifying_and_refunding_again_write_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, seckill_price="10.50")
    order_id = await stored_order(client, auth, app_services, item.id)
    gateway = app_services.gateway
    assert isinstance(gateway, SimulatedGateway)

    paid = await asyncio.gather(*(pay(client, auth.headers(), order_id) for _ in range(3)))
    assert {r.status_code for r in paid} == {200}
    reference = gateway.charges[order_id].reference
    body = notification(order_id, "10.50", reference)
    assert (await notify(client, app_services, body)).json() == {"outcome": "duplicate"}
    assert (await pay(client, auth.headers(), order_id)).status_code == 200

    refunds = await asyncio.gather(*(refund(client, auth.admin(), order_id) for _ in range(3)))
    assert sorted(r.status_code for r in refunds) == [200, 409, 409]
    assert ledger(await my_points(client, auth, "shopper-1")) == [
        ("order_refunded", -10, 0),
        ("order_paid", 10, 0),
    ]


async def test_a_refund_takes_back_no_more_than_the_balance(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """Points earned and spent meanwhile (say on a lottery) stay spent: the reversal takes
    what is left and records the rest as its shortfall."""
    item = await create_live_item(client, auth, stock=10, seckill_price="30.00")
    order_id = await paid_order(client, auth, app_services, item.id)
    async with app_services.sessionmaker() as session, session.begin():
        # What a spending entry will look like: the entry and the balance in one go.
        await session.execute(
            text(
                "INSERT INTO point_entries (user_id, points, reason, reference) "
                "VALUES ('shopper-1', -25, 'spent', 'test')"
            )
        )
        await session.execute(text("UPDATE point_balances SET balance = balance - 25"))

    assert (await refund(client, auth.admin(), order_id)).status_code == 200

    body = await my_points(client, auth, "shopper-1")
    assert body["balance"] == 0
    assert ledger(body)[0] == ("order_refunded", -5, 25)
    assert await point_books(app_services) == {"shopper-1": (0, 0)}


async def test_points_are_the_owners_alone(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, seckill_price="5.00", per_user_limit=5)
    for _ in range(3):
        await paid_order(client, auth, app_services, item.id)
    assert await my_points(client, auth, "someone-else") == {"balance": 0, "entries": []}
    page = await my_points(client, auth, "shopper-1", limit=2, offset=1)
    assert page["balance"] == 15
    assert len(page["entries"]) == 2
    assert_problem(await client.get("/api/v1/me/points"), 401, "unauthorized")


async def test_other_domains_add_points_once_per_reference(app_services: Container) -> None:
    async with app_services.sessionmaker() as session, session.begin():
        add = points_service.add_points
        assert await add(
            session=session, user_id="u1", points=50, reason="lottery_prize", reference="7"
        )
        assert not await add(
            session=session, user_id="u1", points=50, reason="lottery_prize", reference="7"
        )
        assert await add(
            session=session, user_id="u1", points=5, reason="lottery_prize", reference="8"
        )
        for reason, points in (("order_paid", 1), ("lottery_prize", -1)):
            with pytest.raises(ValidationFailed):
                await add(
                    session=session, user_id="u1", points=points, reason=reason, reference="9"
                )
    assert await point_books(app_services) == {"u1": (55, 55)}
