"""Typed factories and probes for promotion tests, going through the real API."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from app.container import Container
from app.promotions.schemas import PromotionRead
from app.store.promotion_keys import PromotionKeys
from tests.support.factories import Auth


def promotion_spec(**overrides: Any) -> dict[str, Any]:
    """满200减30 for the first 3 orders a day, one per user, in force for a day from a
    minute ago."""
    now = datetime.now(UTC)
    spec: dict[str, Any] = {
        "name": "200 off 30, first 3 a day",
        "amount_off": "30.00",
        "min_spend": "200.00",
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
        "daily_limit": 3,
    }
    spec.update(overrides)
    return {k: v for k, v in spec.items() if v is not None}


async def create_promotion(
    client: httpx.AsyncClient, auth: Auth, **overrides: Any
) -> PromotionRead:
    response = await client.post(
        "/api/v1/admin/promotions", json=promotion_spec(**overrides), headers=auth.admin()
    )
    assert response.status_code == 201, response.text
    return PromotionRead.model_validate_json(response.content)


def basket(items: dict[str, int], coupon: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"items": [{"sku": s, "quantity": q} for s, q in items.items()]}
    if coupon is not None:
        data["coupon"] = coupon
    return data


async def checkout(
    client: httpx.AsyncClient,
    auth: Auth,
    items: dict[str, int],
    *,
    user: str = "shopper-1",
    coupon: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.post(
        "/api/v1/orders",
        json=basket(items, coupon),
        headers={**auth.headers(user), **(headers or {})},
    )


async def taken(services: Container, promotion_id: int, day: date) -> int:
    """Places taken in Redis on `day`."""
    keys = PromotionKeys(services.settings.redis_key_prefix, promotion_id).day(day)
    return int(await services.redis.get(keys.taken) or 0)


async def promoted_orders(services: Container, promotion_id: int) -> list[tuple[str, str, date]]:
    """(order id, user id, day) of every stored order holding a place, not cancelled."""
    async with services.sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT id, user_id, promotion_day FROM orders WHERE promotion_id = :id "
                "AND status <> 'cancelled' ORDER BY id"
            ),
            {"id": promotion_id},
        )
    return [(row[0], row[1], row[2]) for row in rows]


def utc_today() -> date:
    return datetime.now(UTC).date()
