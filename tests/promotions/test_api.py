"""The promotions API: create (201, 422 for bad fields, 404 for an unknown campaign), read
(admin), the public list (in force and approved or without a campaign only)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.container import Container
from app.store.promotion_keys import PromotionKeys
from tests.support.campaigns import approve_campaign, create_campaign
from tests.support.factories import Auth, assert_problem
from tests.support.promotions import create_promotion, promotion_spec


async def test_created_read_and_loaded_into_redis(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    spec = promotion_spec(
        scope={"skus": ["RICE"], "categories": ["grocery"]}, per_user_daily_limit=2
    )
    response = await client.post("/api/v1/admin/promotions", json=spec, headers=auth.admin())
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["amount_off"] == "30.00"
    assert created["min_spend"] == "200.00"
    assert created["scope"] == {"skus": ["RICE"], "categories": ["grocery"]}
    assert (created["daily_limit"], created["per_user_daily_limit"]) == (3, 2)
    assert created["campaign_id"] is None

    read = await client.get(f"/api/v1/admin/promotions/{created['id']}", headers=auth.admin())
    assert read.status_code == 200
    assert read.json() == created
    terms = await app_services.redis.hgetall(
        PromotionKeys(app_services.settings.redis_key_prefix, created["id"]).promotion
    )
    assert (terms["daily_limit"], terms["per_user_limit"], terms["held"]) == ("3", "2", "0")


async def test_per_user_daily_limit_defaults_to_one(client: httpx.AsyncClient, auth: Auth) -> None:
    assert (await create_promotion(client, auth)).per_user_daily_limit == 1


BAD_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"amount_off": "0"}, "amount_off"),
    ({"amount_off": "1.234"}, "amount_off"),
    ({"min_spend": "-1"}, "min_spend"),
    ({"daily_limit": 0}, "daily_limit"),
    ({"daily_limit": "3"}, "daily_limit"),
    ({"per_user_daily_limit": 0}, "per_user_daily_limit"),
    ({"name": ""}, "name"),
    ({"scope": {}}, "scope"),
    ({"scope": {"skus": []}}, "scope"),
    ({"campaign_id": 0}, "campaign_id"),
    ({"starts_at": "tomorrow"}, "starts_at"),
    ({"starts_at": "2026-12-06T10:00:00"}, "starts_at"),  # no timezone
    ({"unknown": 1}, "unknown"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_FIELDS)
async def test_bad_fields_are_422(
    client: httpx.AsyncClient, auth: Auth, overrides: dict[str, Any], field: str
) -> None:
    response = await client.post(
        "/api/v1/admin/promotions", json=promotion_spec(**overrides), headers=auth.admin()
    )
    body = assert_problem(response, 422, "validation_error")
    assert field in response.text, body


async def test_a_window_ended_or_reversed_is_422(client: httpx.AsyncClient, auth: Auth) -> None:
    now = datetime.now(UTC)
    for starts, ends in [(now - timedelta(hours=2), now - timedelta(hours=1)), (now, now)]:
        response = await client.post(
            "/api/v1/admin/promotions",
            json=promotion_spec(starts_at=starts.isoformat(), ends_at=ends.isoformat()),
            headers=auth.admin(),
        )
        assert_problem(response, 422, "validation_error")


async def test_unknown_campaign_is_404_and_nothing_created(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    response = await client.post(
        "/api/v1/admin/promotions", json=promotion_spec(campaign_id=999), headers=auth.admin()
    )
    assert_problem(response, 404, "not_found")
    assert (await client.get("/api/v1/promotions")).json() == []


async def test_admin_only(client: httpx.AsyncClient, auth: Auth) -> None:
    response = await client.post(
        "/api/v1/admin/promotions", json=promotion_spec(), headers=auth.headers()
    )
    assert_problem(response, 403, "forbidden")
    anonymous = await client.post("/api/v1/admin/promotions", json=promotion_spec())
    assert_problem(anonymous, 401, "unauthorized")
    assert_problem(
        await client.get("/api/v1/admin/promotions/1", headers=auth.headers()), 403, "forbidden"
    )


async def test_unknown_promotion_is_404(client: httpx.AsyncClient, auth: Auth) -> None:
    assert_problem(
        await client.get("/api/v1/admin/promotions/42", headers=auth.admin()), 404, "not_found"
    )


async def test_public_list_shows_those_in_force_of_approved_campaigns_or_none(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    draft = await create_campaign(client, auth)
    approved = await create_campaign(client, auth, name="Approved")
    await approve_campaign(client, auth, approved["id"])
    plain = await create_promotion(client, auth, name="plain")
    await create_promotion(client, auth, name="held", campaign_id=draft["id"])
    of_approved = await create_promotion(client, auth, name="approved", campaign_id=approved["id"])
    later = datetime.now(UTC) + timedelta(hours=1)
    await create_promotion(
        client,
        auth,
        name="later",
        starts_at=later.isoformat(),
        ends_at=(later + timedelta(hours=1)).isoformat(),
    )

    listed = (await client.get("/api/v1/promotions")).json()

    assert sorted(p["id"] for p in listed) == sorted([plain.id, of_approved.id])
