"""The members' figures on the operators' live stats (the dashboard's tiles): the points
the sale's paid orders issued, invites accepted and rewarded."""

import httpx

from app.container import Container
from tests.support.factories import Auth, create_event, item_spec
from tests.support.payments import paid_order


async def test_live_stats_show_the_points_the_sales_orders_issued(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_event(client, auth, items=[item_spec(seckill_price="10.50")])
    item_id = event.items[0].id
    await paid_order(client, auth, app_services, item_id, user_id="m1", quantity=2, member=True)
    await paid_order(client, auth, app_services, item_id, user_id="s1")

    stats = await client.get(f"/api/v1/admin/events/{event.id}/stats", headers=auth.admin())

    assert stats.status_code == 200, stats.text
    members = stats.json()["members"]
    # 21.00 by a member (x2), 10.50 by a shopper: floor(21) * 2 + floor(10.5).
    assert members["points"] == {"earned": 52, "reversed": 0, "net": 52, "shortfall": 0}
    assert members["invites"] == {"accepted": 0, "rewarded_pairs": 0, "reward_failed": 0}
    assert stats.json()["member_units"] == 2
