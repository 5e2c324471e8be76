"""Live stats: after a crowd they agree with Postgres (participants within 2%), the
stream sends them as Server-Sent Events, the public board shows them."""

import json
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text

from app.container import Container
from tests.live.crowd import Crowd
from tests.support.factories import Auth, assert_problem, create_event, item_spec
from tests.support.lifecycle import store_orders

USERS = 1000
ATTEMPTS = 1600


async def database_figures(services: Container, event_id: int) -> dict[str, Any]:
    async with services.sessionmaker() as session:
        row = (
            await session.execute(
                text(
                    """
                    SELECT count(*) AS orders, sum(quantity) AS units,
                           count(DISTINCT user_id) AS buyers,
                           count(*) FILTER (WHERE status = 'paid') AS paid_orders,
                           coalesce(sum(quantity) FILTER (WHERE status = 'paid'), 0)
                               AS paid_units,
                           coalesce(sum(amount) FILTER (WHERE status = 'paid'), 0) AS gmv
                    FROM orders WHERE event_id = :event_id
                    """
                ),
                {"event_id": event_id},
            )
        ).one()
    return dict(row._mapping)


async def test_stats_after_a_crowd_agree_with_postgres(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_event(
        client,
        auth,
        items=[
            item_spec(sku="PHONE", name="Phone", stock=300, per_user_limit=2),
            item_spec(sku="BUDS", name="Buds", stock=200, per_user_limit=1),
        ],
    )
    items = {i.sku: i for i in event.items}
    await client.patch(
        f"/api/v1/admin/items/{items['PHONE'].id}",
        json={"low_stock_threshold": 1000},
        headers=auth.admin(),
    )
    crowd = Crowd(client, auth, [i.id for i in event.items], users=USERS)

    results = await crowd.run(ATTEMPTS)
    await app_services.refused_tries.flush(app_services.redis)
    await store_orders(app_services)
    paid = [r for r in results if r.status == 202][:25]
    for attempt in paid:
        response = await client.post(
            f"/api/v1/orders/{attempt.order_id}/pay", headers=auth.headers(attempt.user_id)
        )
        assert response.status_code == 200, response.text

    stats = (
        await client.get(f"/api/v1/admin/events/{event.id}/stats", headers=auth.admin())
    ).json()

    expected = await database_figures(app_services, event.id)
    assert {r.status for r in results} <= {202, 409, 422}
    assert any(r.code == "sold_out" for r in results), "the crowd should sell out an item"
    assert abs(stats["participants"] - USERS) <= USERS * 0.02
    assert stats["attempts"] == ATTEMPTS
    assert (stats["accepted_orders"], stats["accepted_units"]) == (
        expected["orders"],
        expected["units"],
    )
    assert (stats["paid_orders"], stats["paid_units"], Decimal(stats["gmv"])) == (
        expected["paid_orders"],
        expected["paid_units"],
        expected["gmv"],
    )
    assert abs(stats["conversion"] - expected["buyers"] / USERS) <= 0.02
    by_id = {i["id"]: i for i in stats["items"]}
    for item in event.items:
        found = by_id[item.id]
        assert found["allocated"] == item.stock
        assert found["remaining"] == item.stock - found["accepted_units"]
    phone, buds = by_id[items["PHONE"].id], by_id[items["BUDS"].id]
    assert phone["low_stock"] is True
    assert buds["low_stock"] is False
    sold_out = [i for i in (phone, buds) if i["remaining"] == 0]
    assert sold_out
    assert all(i["sold_out_at"] is not None for i in sold_out)
    assert all(i["state"] == "sold_out" for i in sold_out)


async def test_stats_stream_sends_stats_events(client: httpx.AsyncClient, auth: Auth) -> None:
    event = await create_event(client, auth)

    response = await client.get(
        f"/api/v1/admin/events/{event.id}/stats/stream",
        params={"limit": 2},
        headers=auth.admin(),
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in response.text.split("\n\n") if b]
    assert len(blocks) == 2
    for block in blocks:
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        assert lines["event"] == "stats"
        assert json.loads(lines["data"])["event_id"] == event.id


async def test_public_live_board(client: httpx.AsyncClient, auth: Auth) -> None:
    event = await create_event(client, auth, items=[item_spec(stock=5)])
    item = event.items[0]
    for user in ("a", "b", "a"):
        await client.post(f"/api/v1/items/{item.id}/purchase", json={}, headers=auth.headers(user))

    board = (await client.get(f"/api/v1/events/{event.id}/live")).json()

    assert board["participants"] == 2
    assert board["items"] == [{"id": item.id, "remaining": 2, "state": "live"}]


async def test_stats_problems(client: httpx.AsyncClient, auth: Auth) -> None:
    event = await create_event(client, auth)

    assert_problem(
        await client.get("/api/v1/admin/events/999999/stats", headers=auth.admin()),
        404,
        "not_found",
    )
    assert_problem(
        await client.get("/api/v1/admin/events/999999/stats/stream", headers=auth.admin()),
        404,
        "not_found",
    )
    assert_problem(await client.get("/api/v1/events/999999/live"), 404, "not_found")
    assert_problem(
        await client.get(f"/api/v1/admin/events/{event.id}/stats", headers=auth.headers()),
        403,
        "forbidden",
    )
    assert_problem(
        await client.get(f"/api/v1/admin/events/{event.id}/stats/stream"), 401, "unauthorized"
    )
    assert_problem(
        await client.get(
            f"/api/v1/admin/events/{event.id}/stats/stream",
            params={"limit": 0},
            headers=auth.admin(),
        ),
        422,
        "validation_error",
    )
