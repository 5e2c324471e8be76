"""The sale and campaign reports count the points their orders issued and took back,
and the invites accepted during them and rewarded on their orders."""

from typing import Any

import httpx
import pytest

from app.container import Container
from app.flows.grants import wait_for_background
from tests.support.campaigns import approve_campaign, create_campaign
from tests.support.coupons import create_coupon
from tests.support.factories import Auth, create_event, item_spec
from tests.support.members import accept, invite_code
from tests.support.payments import paid_order, refund


@pytest.mark.parametrize("settings_overrides", [{"invite_reward_coupon_id": 1}])
async def test_reports_count_points_and_invites(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, settings_overrides: Any
) -> None:
    assert (await create_coupon(client, auth)).id == 1
    campaign = await create_campaign(client, auth)
    event = await create_event(
        client,
        auth,
        campaign_id=campaign["id"],
        items=[item_spec(stock=20, per_user_limit=5, seckill_price="25.60")],
    )
    await approve_campaign(client, auth, campaign["id"])
    item_id = event.items[0].id
    code = await invite_code(client, auth, "alice")
    for invitee in ("carol", "dan"):
        assert (await accept(client, auth, code, invitee)).status_code == 200
    # Dan accepted but has not paid.
    paid = [
        await paid_order(client, auth, app_services, item_id, user_id=user)
        for user in ("carol", "carol", "bob")
    ]
    assert (await refund(client, auth.admin(), paid[1])).status_code == 200
    await wait_for_background()

    expected = {
        "points": {"earned": 75, "reversed": 25, "net": 50, "shortfall": 0},
        "invites": {"accepted": 2, "rewarded_pairs": 1, "reward_failed": 0},
    }
    sale = await client.get(f"/api/v1/admin/events/{event.id}/report", headers=auth.admin())
    assert sale.status_code == 200, sale.text
    assert sale.json()["members"] == expected
    whole = await client.get(
        f"/api/v1/admin/campaigns/{campaign['id']}/report", headers=auth.admin()
    )
    assert whole.status_code == 200, whole.text
    assert whole.json()["members"] == expected
