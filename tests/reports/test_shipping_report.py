"""Shipping in the sale report, the live stats and /metrics: a shipped order still counts
as sold (GMV, paid units), and the orders past their ship-by are counted."""

from datetime import timedelta
from decimal import Decimal

import httpx
from sqlalchemy import text

from app.container import Container
from tests.orders.test_shipping import move_ship_by, sale_item, ship
from tests.support.factories import Auth
from tests.support.payments import paid_order


async def test_shipped_orders_stay_sold_and_late_ones_are_counted(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item_id = await sale_item(client, auth, days=1)
    shipped = await paid_order(client, auth, app_services, item_id, user_id="s1", quantity=2)
    late = await paid_order(client, auth, app_services, item_id, user_id="s2")
    await paid_order(client, auth, app_services, item_id, user_id="s3")  # never shipped
    assert (await ship(client, auth, shipped)).status_code == 200
    # The ship-by passes; then one more ships, late.
    await move_ship_by(app_services, item_id, timedelta(hours=5))
    assert (await ship(client, auth, late)).status_code == 200
    async with app_services.sessionmaker() as session:
        # The first shipped before the ship-by; paid two hours and one hour before they
        # shipped.
        await session.execute(
            text(
                "UPDATE orders SET shipped_at = now() - interval '6 hours', "
                "paid_at = now() - interval '8 hours' WHERE id = :id"
            ),
            {"id": shipped},
        )
        await session.execute(
            text("UPDATE orders SET paid_at = shipped_at - interval '1 hour' WHERE id = :id"),
            {"id": late},
        )
        event_id = await session.scalar(
            text("SELECT event_id FROM event_items WHERE id = :id"), {"id": item_id}
        )
        await session.commit()

    response = await client.get(f"/api/v1/admin/events/{event_id}/report", headers=auth.admin())
    assert response.status_code == 200, response.text
    report = response.json()
    # Sold: every paid order, shipped or not (four units at 1999.00).
    assert report["totals"]["paid_orders"] == 3
    assert report["totals"]["paid_units"] == 4
    assert Decimal(report["totals"]["gmv"]) == Decimal("7996.00")
    assert report["items"][0]["paid_units"] == 4
    shipping = report["shipping"]
    assert shipping["ship_within_days"] == 1
    assert shipping["ship_by"] is not None
    assert shipping["shipped_orders"] == 2
    assert shipping["awaiting_orders"] == 1
    assert shipping["overdue_orders"] == 1
    assert shipping["shipped_late_orders"] == 1
    assert shipping["median_hours_to_ship"] == 1.5
    assert shipping["p95_hours_to_ship"] == 1.95

    stats = (
        await client.get(f"/api/v1/admin/events/{event_id}/stats", headers=auth.admin())
    ).json()
    assert stats["paid_orders"] == 3
    assert stats["paid_units"] == 4
    assert Decimal(stats["gmv"]) == Decimal("7996.00")
    assert stats["overdue_shipments"] == 1

    metrics = await client.get("/metrics")
    assert "seckill_orders_past_ship_by 1\n" in metrics.text


async def test_a_sale_without_a_promise_has_no_overdue_orders(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item_id = await sale_item(client, auth, days=None)
    await paid_order(client, auth, app_services, item_id)
    async with app_services.sessionmaker() as session:
        event_id = await session.scalar(
            text("SELECT event_id FROM event_items WHERE id = :id"), {"id": item_id}
        )
    report = (
        await client.get(f"/api/v1/admin/events/{event_id}/report", headers=auth.admin())
    ).json()
    assert report["shipping"]["ship_by"] is None
    assert report["shipping"]["awaiting_orders"] == 1
    assert report["shipping"]["overdue_orders"] == 0
    assert report["shipping"]["median_hours_to_ship"] is None
