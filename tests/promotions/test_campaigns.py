"""Promotions with their campaign: copied with it (times shifted, held in the draft copy),
and released by its approval through the campaign API."""

from datetime import datetime, timedelta

import httpx

from app.container import Container
from tests.support.campaigns import approve_campaign, create_campaign
from tests.support.coupons import create_sku
from tests.support.factories import Auth, assert_problem
from tests.support.promotions import create_promotion


async def test_a_campaign_copy_copies_its_promotions_shifted_and_held(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="250.00")
    campaign = await create_campaign(client, auth)
    await approve_campaign(client, auth, campaign["id"])
    promotion = await create_promotion(
        client, auth, campaign_id=campaign["id"], scope={"categories": ["food"]}, daily_limit=7
    )

    copied = await client.post(
        f"/api/v1/admin/campaigns/{campaign['id']}/copy",
        json={"shift_days": 7},
        headers=auth.admin(),
    )

    assert copied.status_code == 201, copied.text
    new_id = copied.json()["promotions"][str(promotion.id)]
    read = await client.get(f"/api/v1/admin/promotions/{new_id}", headers=auth.admin())
    copy = read.json()
    assert copy["campaign_id"] == copied.json()["campaign"]["id"]
    assert datetime.fromisoformat(copy["starts_at"]) == promotion.starts_at + timedelta(days=7)
    assert datetime.fromisoformat(copy["ends_at"]) == promotion.ends_at + timedelta(days=7)
    assert (copy["scope"], copy["daily_limit"]) == ({"skus": None, "categories": ["food"]}, 7)
    # The copy's campaign is a draft: only the source's promotion is in force.
    assert [p["id"] for p in (await client.get("/api/v1/promotions")).json()] == [promotion.id]


async def test_a_shift_that_ends_a_promotion_is_422(client: httpx.AsyncClient, auth: Auth) -> None:
    campaign = await create_campaign(client, auth)
    await create_promotion(client, auth, campaign_id=campaign["id"])

    copied = await client.post(
        f"/api/v1/admin/campaigns/{campaign['id']}/copy",
        json={"shift_days": -3},
        headers=auth.admin(),
    )

    problem = assert_problem(copied, 422, "validation_error")
    assert "promotion" in problem["detail"]
