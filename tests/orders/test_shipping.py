"""Shipping: events promise a ship-by, operators ship paid orders with a carrier and a
tracking number (status `shipped`), and the list of paid orders past their ship-by."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.container import Container
from app.flows.audit import audit
from app.moments import ship_by
from tests.support.factories import Auth, assert_problem, create_event, event_spec, item_spec
from tests.support.lifecycle import order_row, stored_order, transitions
from tests.support.payments import paid_order, refund

SHIPMENT = {"carrier": "DHL", "tracking_number": "JD0123456789"}


def ship(
    client: httpx.AsyncClient, auth: Auth, order_id: str, body: dict[str, Any] | None = None
) -> Any:
    return client.post(
        f"/api/v1/admin/orders/{order_id}/ship", json=body or SHIPMENT, headers=auth.admin()
    )


async def sale_item(
    client: httpx.AsyncClient, auth: Auth, *, days: int | None = 2, sku: str = "PHONE-1"
) -> int:
    event = await create_event(
        client, auth, ship_within_days=days, items=[item_spec(sku=sku, stock=20, per_user_limit=5)]
    )
    return event.items[0].id


async def a_paid_order(client: httpx.AsyncClient, auth: Auth, services: Container) -> str:
    """A paid order of a sale that promises 2 working days."""
    return await paid_order(client, auth, services, await sale_item(client, auth))


async def shipments(services: Container, order_id: str) -> list[tuple[str, str, str]]:
    """The order's transitions to `shipped`."""
    return [t for t in await transitions(services, order_id) if t[1] == "shipped"]


async def move_ship_by(services: Container, item_id: int, ago: timedelta) -> None:
    """Move the item's event into the past in Postgres: its end, and its ship-by (fixed
    from the end when the event was created) `ago` before now."""
    async with services.sessionmaker() as session:
        await session.execute(
            text(
                "UPDATE events SET starts_at = CAST(:end AS timestamptz) - interval '2 hours', "
                "ends_at = :end, ship_by = :ship_by "
                "WHERE id = (SELECT event_id FROM event_items WHERE id = :item_id)"
            ),
            {
                "end": datetime.now(UTC) - ago - timedelta(days=3),
                "ship_by": datetime.now(UTC) - ago,
                "item_id": item_id,
            },
        )
        await session.commit()


# -- events promise a ship-by -----------------------------------------------------------


async def test_an_event_promises_working_days_after_its_end(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    spec = event_spec(ship_within_days=3)
    response = await client.post("/api/v1/admin/events", json=spec, headers=auth.admin())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["ship_within_days"] == 3
    ends_at = datetime.fromisoformat(spec["ends_at"])
    settings = app_services.settings
    expected = ship_by(
        ends_at, 3, timezone=settings.business_timezone, holidays=settings.shipping_holidays
    )
    assert datetime.fromisoformat(body["ship_by"]) == expected
    shown = (await client.get(f"/api/v1/events/{body['id']}")).json()
    assert shown["ship_within_days"] == 3
    assert datetime.fromisoformat(shown["ship_by"]) == expected


async def test_an_event_without_a_promise_has_no_ship_by(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    event = await create_event(client, auth)
    assert event.ship_within_days is None
    assert event.ship_by is None


async def test_moving_the_end_moves_the_ship_by(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_event(client, auth, ship_within_days=1)
    ends_at = event.ends_at + timedelta(days=3)
    response = await client.patch(
        f"/api/v1/admin/events/{event.id}",
        json={"ends_at": ends_at.isoformat()},
        headers=auth.admin(),
    )
    assert response.status_code == 200, response.text
    shown = (await client.get(f"/api/v1/events/{event.id}")).json()
    settings = app_services.settings
    assert datetime.fromisoformat(shown["ship_by"]) == ship_by(
        ends_at, 1, timezone=settings.business_timezone, holidays=settings.shipping_holidays
    )


@pytest.mark.parametrize("days", [-1, 41, 10**12, "3", 1.5, True])
async def test_a_bad_ship_within_days_is_refused(
    client: httpx.AsyncClient, auth: Auth, days: Any
) -> None:
    spec = {**event_spec(), "ship_within_days": days}
    response = await client.post("/api/v1/admin/events", json=spec, headers=auth.admin())
    body = assert_problem(response, 422, "validation_error")
    assert any("ship_within_days" in str(e) for e in body["errors"]), body


# -- shipping an order ------------------------------------------------------------------


async def test_an_operator_ships_a_paid_order(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    order_id = await a_paid_order(client, auth, app_services)

    response = await ship(client, auth, order_id)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "shipped"
    assert body["carrier"] == "DHL"
    assert body["tracking_number"] == "JD0123456789"
    assert body["shipped_at"] is not None
    # The shopper sees it shipped, with its tracking number.
    mine = (await client.get(f"/api/v1/orders/{order_id}", headers=auth.headers())).json()
    assert mine["status"] == "shipped"
    assert mine["tracking_number"] == "JD0123456789"
    assert await shipments(app_services, order_id) == [("paid", "shipped", "shipment")]
    logged = await client.get("/api/v1/admin/audit-log", headers=auth.admin())
    assert logged.status_code == 200, logged.text
    assert any(
        e["action"] == "order.ship" and e["target"] == f"order:{order_id}" for e in logged.json()
    )


async def test_shipping_again_with_the_same_tracking_number_changes_nothing(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    order_id = await a_paid_order(client, auth, app_services)
    first = await ship(client, auth, order_id)
    again = await ship(
        client, auth, order_id, {"carrier": " DHL ", "tracking_number": "JD0123456789"}
    )
    assert again.status_code == 200, again.text
    assert again.json()["shipped_at"] == first.json()["shipped_at"]
    other = await ship(client, auth, order_id, {"carrier": "DHL", "tracking_number": "OTHER1"})
    body = assert_problem(other, 409, "invalid_state")
    assert body["order_status"] == "shipped"
    row = await order_row(app_services, order_id)
    assert row.tracking_number == "JD0123456789"
    assert len(await shipments(app_services, order_id)) == 1


async def test_only_a_paid_order_ships(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item_id = await sale_item(client, auth)
    pending = await stored_order(client, auth, app_services, item_id, user_id="u-pending")
    body = assert_problem(await ship(client, auth, pending), 409, "invalid_state")
    assert body["order_status"] == "pending_payment"
    refunded = await paid_order(client, auth, app_services, item_id, user_id="u-refunded")
    assert (await refund(client, auth.admin(), refunded)).status_code == 200
    assert_problem(await ship(client, auth, refunded), 409, "invalid_state")
    assert (await order_row(app_services, pending)).status == "pending_payment"


async def test_a_shipped_order_is_not_refunded_directly(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    order_id = await a_paid_order(client, auth, app_services)
    assert (await ship(client, auth, order_id)).status_code == 200
    assert_problem(await refund(client, auth.admin(), order_id), 409, "invalid_state")
    assert (await order_row(app_services, order_id)).status == "shipped"


async def test_shipping_refusals(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    order_id = await a_paid_order(client, auth, app_services)
    missing = f"01JZZZZZZZZZZZZZZZZZZZZZZZ-{order_id.rsplit('-', 1)[1]}"
    assert_problem(await ship(client, auth, missing), 404, "not_found")
    shopper = await client.post(
        f"/api/v1/admin/orders/{order_id}/ship", json=SHIPMENT, headers=auth.headers()
    )
    assert shopper.status_code == 403
    for bad in (
        {"carrier": "", "tracking_number": "X1"},
        {"carrier": "   ", "tracking_number": "X1"},
        {"carrier": "DHL", "tracking_number": ""},
        {"carrier": "D" * 65, "tracking_number": "X1"},
        {"carrier": "DHL", "tracking_number": "1" * 129},
        {"carrier": "DHL", "tracking_number": "has space"},
        {"carrier": "DHL"},
        {**SHIPMENT, "extra": 1},
    ):
        assert_problem(await ship(client, auth, order_id, bad), 422, "validation_error")
    assert (await order_row(app_services, order_id)).status == "paid"


async def test_concurrent_shipments_make_one_transition(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    order_id = await a_paid_order(client, auth, app_services)
    bodies = [{"carrier": "DHL", "tracking_number": f"T{i}"} for i in range(6)]
    answers = await asyncio.gather(*(ship(client, auth, order_id, b) for b in bodies))
    assert sorted(a.status_code for a in answers) == [200] + [409] * 5
    won = next(a.json() for a in answers if a.status_code == 200)
    row = await order_row(app_services, order_id)
    assert row.tracking_number == won["tracking_number"]
    assert await shipments(app_services, order_id) == [("paid", "shipped", "shipment")]


async def test_a_shipped_order_keeps_the_books_balanced(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item_id = await sale_item(client, auth)
    order_id = await paid_order(client, auth, app_services, item_id, quantity=3)
    assert (await ship(client, auth, order_id)).status_code == 200
    event_id = (await order_row(app_services, order_id)).event_id
    assert event_id is not None

    report = await audit(services=app_services, event_id=event_id)

    assert report.ok, report.problems
    (item,) = report.items
    # Its units stay sold: not back on sale, not owed back.
    assert (item.sold, item.remaining, item.owed) == (3, 17, 0)


# -- the overdue list -------------------------------------------------------------------


async def overdue(client: httpx.AsyncClient, auth: Auth, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(
        "/api/v1/admin/shipments/overdue", params=params, headers=auth.admin()
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def test_paid_orders_past_their_ship_by_are_listed_most_overdue_first(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    late = await sale_item(client, auth, sku="LATE")
    later = await sale_item(client, auth, sku="LATER")
    on_time = await sale_item(client, auth, sku="ON-TIME")
    no_promise = await sale_item(client, auth, days=None, sku="NO-PROMISE")
    a1 = await paid_order(client, auth, app_services, late, user_id="a1")
    a2 = await paid_order(client, auth, app_services, late, user_id="a2")
    shipped = await paid_order(client, auth, app_services, late, user_id="a3")
    await stored_order(client, auth, app_services, late, user_id="a4")  # unpaid
    b1 = await paid_order(client, auth, app_services, later, user_id="b1")
    await paid_order(client, auth, app_services, on_time, user_id="c1")
    await paid_order(client, auth, app_services, no_promise, user_id="d1")
    assert (await ship(client, auth, shipped)).status_code == 200
    assert await overdue(client, auth) == []

    await move_ship_by(app_services, late, timedelta(days=2))
    await move_ship_by(app_services, later, timedelta(hours=1))
    await move_ship_by(app_services, on_time, -timedelta(hours=1))  # due in an hour

    found = await overdue(client, auth)
    assert [o["id"] for o in found] == [a1, a2, b1]
    assert {o["status"] for o in found} == {"paid"}
    assert datetime.fromisoformat(found[0]["ship_by"]) < datetime.fromisoformat(found[2]["ship_by"])
    assert [o["id"] for o in await overdue(client, auth, limit=2, offset=1)] == [a2, b1]
    assert (await ship(client, auth, a1)).status_code == 200
    assert [o["id"] for o in await overdue(client, auth)] == [a2, b1]


async def test_the_overdue_list_is_for_operators(client: httpx.AsyncClient, auth: Auth) -> None:
    response = await client.get("/api/v1/admin/shipments/overdue", headers=auth.headers())
    assert response.status_code == 403
