"""A crowd buys while an operator adds stock and lowers the limit: nothing is oversold,
the books and the audit log hold, and the lower limit binds later purchases only."""

import asyncio
from collections import defaultdict
from typing import Any

import httpx
from sqlalchemy import select

from app.container import Container
from app.flows import audit as sale_audit
from app.inventory.models import StockMovement
from app.orders.models import Order
from app.store.keys import ItemKeys
from tests.live.crowd import Crowd
from tests.support.factories import Auth, create_event, item_spec
from tests.support.lifecycle import store_orders
from tests.support.lua import redis_now_ms
from tests.support.waiting import eventually

INITIAL = 150
ADDED = (60, 40)
LIMIT, LOWER_LIMIT = 3, 1


async def test_crowd_while_stock_is_added_and_the_limit_lowered(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    response = await client.post(
        "/api/v1/admin/skus",
        json={"sku": "PHONE-1", "name": "Phone", "on_hand": INITIAL + sum(ADDED)},
        headers=auth.admin(),
    )
    assert response.status_code == 201, response.text
    event = await create_event(client, auth, items=[item_spec(stock=INITIAL, per_user_limit=LIMIT)])
    item = event.items[0]
    redis = app_services.redis
    lowered_at_ms: list[int] = []

    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)

    async def patch(body: dict[str, int]) -> httpx.Response:
        return await client.patch(f"/api/v1/admin/items/{item.id}", json=body, headers=auth.admin())

    async def stock() -> int:
        return int(await redis.hget(keys.sale, "stock") or 0)

    crowd = Crowd(client, auth, [item.id], users=400)
    stop = asyncio.Event()

    async def stock_below(level: int) -> None:
        async def below() -> bool:
            return await stock() < level

        await eventually(below)

    async def operator() -> None:
        # Mid-crowd, at points the crowd decides (not the clock): lower the limit once
        # half the stock is gone, then add stock twice, each time once it has run low.
        try:
            await stock_below(INITIAL // 2)
            lowered = await patch({"per_user_limit": LOWER_LIMIT})
            assert lowered.status_code == 200, lowered.text
            # Every purchase Redis accepts after this moment saw the lower limit.
            lowered_at_ms.append(await redis_now_ms(redis))
            for units in ADDED:
                await stock_below(10)
                changed = await patch({"add_stock": units})
                assert changed.status_code == 200, changed.text
            await eventually(await crowd.answered(300))
        finally:
            stop.set()

    results, _ = await asyncio.gather(crowd.run_until(stop), operator())

    assert {r.status for r in results} <= {202, 409, 422}
    assert {r.code for r in results if r.status == 409} <= {"sold_out", "limit_exceeded"}
    # Two at once, once the limit is one: a quantity above the limit is malformed.
    assert {(r.code, r.quantity) for r in results if r.status == 422} <= {("validation_error", 2)}
    allocated = INITIAL + sum(ADDED)
    remaining = int(await redis.hget(keys.sale, "stock") or -1)
    accepted = {r.order_id: r for r in results if r.status == 202}
    assert remaining >= 0
    assert sum(r.quantity for r in accepted.values()) == allocated - remaining

    assert await store_orders(app_services) == len(accepted)
    async with app_services.sessionmaker() as session:
        orders = (await session.scalars(select(Order).order_by(Order.accepted_at))).all()
        allocations = (
            await session.scalars(
                select(StockMovement.item_stock_delta).where(
                    StockMovement.item_id == item.id, StockMovement.reason == "allocated"
                )
            )
        ).all()
    assert {o.id for o in orders} == set(accepted)
    assert sorted(allocations) == sorted([INITIAL, *ADDED])

    # The lower limit binds purchases after it, never those before.
    held: dict[str, int] = defaultdict(int)
    later = 0
    for order in orders:
        held[order.user_id] += order.quantity
        if order.accepted_at.timestamp() * 1000 > lowered_at_ms[0]:
            later += 1
            assert held[order.user_id] <= LOWER_LIMIT, (order.user_id, held[order.user_id])
    assert later > 0, "the crowd should still buy after the change"
    assert max(held.values()) > LOWER_LIMIT, "earlier purchases under the old limit stand"

    report = await sale_audit.audit(services=app_services, event_id=event.id)
    assert report.ok, report

    log: list[dict[str, Any]] = (
        await client.get(
            "/api/v1/admin/audit-log", params={"event_id": event.id}, headers=auth.admin()
        )
    ).json()
    assert [(e["action"], e["after"]) for e in reversed(log)][1:] == [
        ("item.update", {"per_user_limit": LOWER_LIMIT}),
        ("item.update", {"stock": INITIAL + ADDED[0], "add_stock": ADDED[0]}),
        ("item.update", {"stock": allocated, "add_stock": ADDED[1]}),
    ]
