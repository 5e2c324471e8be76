"""Typed factories for coupon tests, going through the real API."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from app.container import Container
from app.coupons.schemas import CouponRead
from tests.support.factories import Auth


def coupon_spec(**overrides: Any) -> dict[str, Any]:
    """满300减50, claimable now for an hour, valid a week, 100 in all, 1 per user."""
    now = datetime.now(UTC)
    spec: dict[str, Any] = {
        "name": "300 off 50",
        "kind": "amount_off",
        "amount_off": "50.00",
        "min_spend": "300.00",
        "audience": "all",
        "claim_starts_at": (now - timedelta(minutes=1)).isoformat(),
        "claim_ends_at": (now + timedelta(hours=1)).isoformat(),
        "valid_days_after_claim": 7,
        "total_quantity": 100,
        "per_user_limit": 1,
    }
    spec.update(overrides)
    return {k: v for k, v in spec.items() if v is not None}


async def post_coupon(client: httpx.AsyncClient, auth: Auth, **overrides: Any) -> httpx.Response:
    """POST a coupon template (coupon_spec with `overrides`) as an operator; 201 asserted."""
    response = await client.post(
        "/api/v1/admin/coupons", json=coupon_spec(**overrides), headers=auth.admin()
    )
    assert response.status_code == 201, response.text
    return response


async def create_coupon(client: httpx.AsyncClient, auth: Auth, **overrides: Any) -> CouponRead:
    """Create a coupon template through the admin API and return it."""
    response = await post_coupon(client, auth, **overrides)
    return CouponRead.model_validate_json(response.content)


async def claim(
    client: httpx.AsyncClient,
    auth: Auth,
    coupon_id: int,
    *,
    user_id: str = "shopper-1",
    member: bool = False,
    idempotency_key: str | None = None,
) -> httpx.Response:
    headers = auth.headers(user_id, member=member)
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return await client.post(f"/api/v1/coupons/{coupon_id}/claim", headers=headers)


async def create_sku(
    client: httpx.AsyncClient,
    auth: Auth,
    sku: str,
    *,
    price: str,
    category: str | None = None,
    on_hand: int = 100,
) -> dict[str, Any]:
    body: dict[str, Any] = {"sku": sku, "name": sku.title(), "on_hand": on_hand, "price": price}
    if category is not None:
        body["category"] = category
    response = await client.post("/api/v1/admin/skus", json=body, headers=auth.admin())
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def coupons_per_user(services: Container, coupon_id: int) -> dict[str, int]:
    """How many coupons of the template each user holds (claimed or granted)."""
    async with services.sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT user_id, count(*) FROM user_coupons WHERE coupon_id = :c GROUP BY user_id"
            ),
            {"c": coupon_id},
        )
    return {u: int(n) for u, n in rows}
