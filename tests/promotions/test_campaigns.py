"""Promotions with their campaign: copied with it (times shifted, held in the draft copy),
and released by its approval through the campaign API."""

from datetime import datetime, timedelta

import httpx

from app.container import Container
from app.flows import sale_terms
from app.store.promotion_keys import PromotionKeys
from tests.support.campaigns import approve_campaign, create_campaign
from tests.support.coupons import create_sku
from tests.support.factories import Auth, assert_problem
from tests.support.promotions import checkout, create_promotion


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


async def test_the_terms_check_releases_a_promotion_of_an_approved_campaign_left_held(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """A rebuild that read Postgres just before the approval committed wrote `held` back:
    the worker's terms check releases it."""
    await create_sku(client, auth, "RICE", price="250.00")
    campaign = await create_campaign(client, auth)
    promotion = await create_promotion(client, auth, campaign_id=campaign["id"])
    await approve_campaign(client, auth, campaign["id"])
    key = PromotionKeys(app_services.settings.redis_key_prefix, promotion.id).promotion
    await app_services.redis.hset(key, "held", "1")
    assert (await checkout(client, auth, {"RICE": 1}, user="a")).json()["promotion"] is None

    await sale_terms.check_once(app_services)

    assert await app_services.redis.hget(key, "held") == "0"
    released = (await checkout(client, auth, {"RICE": 1}, user="b")).json()
    assert released["promotion"]["id"] == promotion.id
