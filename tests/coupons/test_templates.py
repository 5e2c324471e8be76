"""Coupon templates: creation (every bad input a clear 422), the public list."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.coupons import coupon_spec, create_coupon, post_coupon
from tests.support.factories import Auth, assert_problem, problem_fields


async def test_create_and_list_with_remaining(client: httpx.AsyncClient, auth: Auth) -> None:
    # The wire format itself: the response body, not the parsed CouponRead.
    created = (await post_coupon(client, auth, total_quantity=1000)).json()
    assert created["remaining"] == 1000
    assert created["kind"] == "amount_off"
    assert created["amount_off"] == "50.00"
    assert created["scope"] is None
    later = await create_coupon(
        client,
        auth,
        name="later",
        claim_starts_at=(datetime.now(UTC) + timedelta(days=1)).isoformat(),
        claim_ends_at=(datetime.now(UTC) + timedelta(days=2)).isoformat(),
    )
    listed = (await client.get("/api/v1/coupons")).json()
    assert [c["id"] for c in listed] == [created["id"], later.id]
    one = (await client.get(f"/api/v1/coupons/{created['id']}")).json()
    assert one == created


async def test_percent_and_tiered_with_scope(client: httpx.AsyncClient, auth: Auth) -> None:
    percent = (
        await post_coupon(
            client,
            auth,
            kind="percent_off",
            amount_off=None,
            percent_off=15,
            max_discount="100",
            min_spend=None,
            scope={"categories": ["food"]},
        )
    ).json()
    assert (percent["percent_off"], percent["max_discount"]) == (15, "100.00")
    assert percent["scope"] == {"skus": None, "categories": ["food"]}
    tiered = (
        await post_coupon(
            client,
            auth,
            kind="tiered",
            amount_off=None,
            min_spend=None,
            tiers=[
                {"min_spend": "1000", "amount_off": "150"},
                {"min_spend": "200", "amount_off": "20"},
                {"min_spend": "500", "amount_off": "60"},
            ],
            scope={"skus": ["PHONE-1"]},
            audience="members",
            valid_days_after_claim=None,
            valid_until=(datetime.now(UTC) + timedelta(days=30)).isoformat(),
        )
    ).json()
    assert [t["min_spend"] for t in tiered["tiers"]] == ["200.00", "500.00", "1000.00"]


def _later(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kind": "percent_off"}, "amount_off"),  # amount_off given to a percent coupon
        ({"amount_off": None}, "amount_off"),  # an amount_off coupon without it
        ({"kind": "percent_off", "amount_off": None}, "percent_off"),
        ({"kind": "percent_off", "amount_off": None, "percent_off": 0}, "percent_off"),
        ({"kind": "percent_off", "amount_off": None, "percent_off": 100}, "percent_off"),
        ({"kind": "tiered", "amount_off": None}, "tiers"),
        ({"kind": "tiered", "amount_off": None, "tiers": []}, "tiers"),
        (
            {
                "kind": "tiered",
                "amount_off": None,
                "tiers": [
                    {"min_spend": "200", "amount_off": "20"},
                    {"min_spend": "200", "amount_off": "30"},
                ],
            },
            "tiers",
        ),
        ({"max_discount": "10"}, "max_discount"),  # only for percent_off
        ({"amount_off": "0"}, "amount_off"),
        ({"amount_off": "-5"}, "amount_off"),
        ({"amount_off": "1.001"}, "amount_off"),
        ({"amount_off": "NaN"}, "amount_off"),
        ({"amount_off": "Infinity"}, "amount_off"),
        ({"amount_off": "10000000000.00"}, "amount_off"),
        ({"min_spend": "abc"}, "min_spend"),
        ({"kind": "bogus"}, "kind"),
        ({"audience": "everyone"}, "audience"),
        ({"total_quantity": 0}, "total_quantity"),
        ({"total_quantity": "5"}, "total_quantity"),
        ({"per_user_limit": 0}, "per_user_limit"),
        ({"valid_days_after_claim": None}, "valid_until"),  # neither validity
        ({"valid_until": _later(3)}, "valid_days_after_claim"),  # both
        ({"valid_days_after_claim": 0}, "valid_days_after_claim"),
        ({"claim_ends_at": "2020-01-01T00:00:00Z", "claim_starts_at": "2019-01-01T00:00:00Z"},
         "claim_ends_at"),
        ({"claim_starts_at": _later(2), "claim_ends_at": _later(1)}, "claim_ends_at"),
        ({"claim_starts_at": "2026-01-01T00:00:00"}, "claim_starts_at"),  # no time zone
        ({"scope": {}}, "scope"),
        ({"scope": {"skus": []}}, "scope.skus"),
        ({"scope": {"skus": ["bad sku!"]}}, "scope.skus.0"),
        ({"scope": {"brands": ["x"]}}, "scope.brands"),
        ({"name": ""}, "name"),
        ({"name": "a\u0000b"}, "name"),
        ({"extra": 1}, "extra"),
    ],
)  # fmt: skip
async def test_bad_templates_are_422_naming_the_field(
    client: httpx.AsyncClient, auth: Auth, overrides: dict[str, Any], field: str
) -> None:
    response = await client.post(
        "/api/v1/admin/coupons", json=coupon_spec(**overrides), headers=auth.admin()
    )
    body = assert_problem(response, 422, "validation_error")
    assert field in problem_fields(body), body


async def test_admin_only(client: httpx.AsyncClient, auth: Auth) -> None:
    response = await client.post(
        "/api/v1/admin/coupons", json=coupon_spec(), headers=auth.headers()
    )
    assert_problem(response, 403, "forbidden")
    response = await client.post("/api/v1/admin/coupons", json=coupon_spec())
    assert_problem(response, 401, "unauthorized")


async def test_unknown_coupon_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/coupons/999999"), 404, "not_found")
    assert_problem(await client.get("/api/v1/coupons/0"), 422, "validation_error")


COUPON_CONTRACT_PATHS = {
    "/api/v1/admin/skus": {"post"},
    "/api/v1/admin/coupons": {"post"},
    "/api/v1/coupons": {"get"},
    "/api/v1/coupons/{coupon_id}/claim": {"post"},
    "/api/v1/me/coupons": {"get"},
    "/api/v1/admin/coupons/{coupon_id}/grants": {"post"},
    "/api/v1/admin/jobs/{job_id}": {"get"},
    "/api/v1/orders/quote": {"post"},
    "/api/v1/orders": {"post", "get"},
}


async def test_the_coupon_contract_is_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    document: dict[str, Any] = (await client.get("/openapi.json")).json()
    for path, methods in COUPON_CONTRACT_PATHS.items():
        assert methods <= document["paths"][path].keys(), path
    claim = document["paths"]["/api/v1/coupons/{coupon_id}/claim"]["post"]["responses"]
    assert {"201", "401", "403", "404", "409", "422", "429"} <= claim.keys()
    assert "coupon_not_applicable" in json.dumps(document["paths"]["/api/v1/orders/quote"])
