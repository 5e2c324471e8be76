"""Typed async factories for test data, going through the real API."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update

from app.auth import mint_token
from app.config import Settings
from app.container import Container
from app.events.models import Event
from app.events.schemas import EventRead, ItemRead
from app.store.keys import ItemKeys


@dataclass(frozen=True)
class Auth:
    settings: Settings

    def headers(self, user_id: str = "shopper-1", *, member: bool = False) -> dict[str, str]:
        token = mint_token(self.settings, user_id=user_id, member=member)
        return {"Authorization": f"Bearer {token}"}

    def admin(self) -> dict[str, str]:
        token = mint_token(self.settings, user_id="operator", admin=True)
        return {"Authorization": f"Bearer {token}"}

    def operator(self, user_id: str, *groups: str) -> dict[str, str]:
        """An operator of `groups` (campaign approvers)."""
        token = mint_token(self.settings, user_id=user_id, admin=True, groups=groups)
        return {"Authorization": f"Bearer {token}"}


def item_spec(
    *,
    sku: str = "PHONE-1",
    name: str = "Phone",
    list_price: str = "2999.00",
    seckill_price: str = "1999.00",
    stock: int = 100,
    per_user_limit: int = 2,
    **member_terms: Any,
) -> dict[str, Any]:
    """An item of an event to create; `member_terms`: member_price, member_reserved,
    member_reserved_until, as the API takes them."""
    return {
        "sku": sku,
        "name": name,
        "list_price": list_price,
        "seckill_price": seckill_price,
        "stock": stock,
        "per_user_limit": per_user_limit,
        **member_terms,
    }


def event_spec(
    *,
    name: str = "Test sale",
    starts_in: timedelta = timedelta(seconds=-60),
    lasts: timedelta = timedelta(hours=1),
    member_early_access_seconds: int = 0,
    items: list[dict[str, Any]] | None = None,
    campaign_id: int | None = None,
    ship_within_days: int | None = None,
) -> dict[str, Any]:
    starts_at = datetime.now(UTC) + starts_in
    spec = {
        "name": name,
        "starts_at": starts_at.isoformat(),
        "ends_at": (starts_at + lasts).isoformat(),
        "member_early_access_seconds": member_early_access_seconds,
        "items": items if items is not None else [item_spec()],
    }
    if campaign_id is not None:
        spec["campaign_id"] = campaign_id
    if ship_within_days is not None:
        spec["ship_within_days"] = ship_within_days
    return spec


async def create_event(client: httpx.AsyncClient, auth: Auth, **spec: Any) -> EventRead:
    """Create an event through the admin API (live by default) and return it."""
    response = await client.post(
        "/api/v1/admin/events", json=event_spec(**spec), headers=auth.admin()
    )
    assert response.status_code == 201, response.text
    return EventRead.model_validate_json(response.content)


async def create_ended_event(
    client: httpx.AsyncClient, auth: Auth, services: Container, **spec: Any
) -> EventRead:
    """An event whose window has passed. The API refuses to create one (its stock would go
    to a sale that can never sell), so a live one is created and then moved into the past:
    its window in Postgres, its sale gone from Redis, as the warm-up leaves an ended sale."""
    event = await create_event(client, auth, **spec)
    ends_at = datetime.now(UTC) - timedelta(hours=2)
    async with services.sessionmaker() as session:
        await session.execute(
            update(Event)
            .where(Event.id == event.id)
            .values(starts_at=ends_at - timedelta(hours=1), ends_at=ends_at)
        )
        await session.commit()
    for item in event.items:
        await services.redis.delete(*ItemKeys(services.settings.redis_key_prefix, item.id).all())
    response = await client.get(f"/api/v1/events/{event.id}")
    assert response.status_code == 200, response.text
    return EventRead.model_validate_json(response.content)


async def create_live_item(client: httpx.AsyncClient, auth: Auth, **item: Any) -> ItemRead:
    """A live sale with one item; returns the item."""
    event = await create_event(client, auth, items=[item_spec(**item)])
    return event.items[0]


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and code; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"].endswith(code)
    assert body["title"]
    assert body["detail"]
    return body


def problem_fields(body: dict[str, Any]) -> set[str]:
    """The fields a validation problem names in `errors`."""
    return {str(error["field"]) for error in body["errors"]}


async def buy(
    client: httpx.AsyncClient,
    auth: Auth,
    item_id: int,
    *,
    user_id: str = "shopper-1",
    quantity: int = 1,
    idempotency_key: str | None = None,
    member: bool = False,
    pass_text: str | None = None,
) -> httpx.Response:
    headers = auth.headers(user_id, member=member)
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    if pass_text is not None:
        headers["X-Seckill-Pass"] = pass_text
    return await client.post(
        f"/api/v1/items/{item_id}/purchase", json={"quantity": quantity}, headers=headers
    )
