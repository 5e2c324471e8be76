"""Waiting-room events and calls, through the real API."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from app.access.queue_models import QueuePlace
from app.container import Container
from app.events.schemas import EventRead
from app.redis import RedisClient
from tests.support.factories import Auth, event_spec
from tests.support.lifecycle import store_orders
from tests.support.lua import redis_now_ms


async def create_queue_event(
    client: httpx.AsyncClient,
    auth: Auth,
    *,
    starts_in: timedelta = timedelta(hours=1),
    lasts: timedelta = timedelta(hours=1),
    opens_in: timedelta = timedelta(minutes=-5),
    admit_per_second: int = 1,
    pass_seconds: int = 600,
    pow_bits: int = 0,
    **spec: Any,
) -> EventRead:
    body = event_spec(starts_in=starts_in, lasts=lasts, **spec)
    body["access"] = {
        "mode": "queue",
        "opens_at": (datetime.now(UTC) + opens_in).isoformat(),
        "admit_per_second": admit_per_second,
        "pass_seconds": pass_seconds,
        "pow_bits": pow_bits,
    }
    response = await client.post("/api/v1/admin/events", json=body, headers=auth.admin())
    assert response.status_code == 201, response.text
    return EventRead.model_validate_json(response.content)


async def join(
    client: httpx.AsyncClient,
    auth: Auth,
    event_id: int,
    user_id: str,
    *,
    pow_nonce: str | None = None,
) -> httpx.Response:
    headers = auth.headers(user_id)
    if pow_nonce is not None:
        headers["X-Seckill-Pow"] = pow_nonce
    return await client.post(f"/api/v1/events/{event_id}/queue", headers=headers)


async def state(
    client: httpx.AsyncClient, auth: Auth, event_id: int, user_id: str
) -> dict[str, Any]:
    response = await client.get(f"/api/v1/events/{event_id}/queue", headers=auth.headers(user_id))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def sleep_past(redis: RedisClient, moment_ms: int) -> None:
    """Wait until Redis's clock (queue.lua's) has passed `moment_ms`."""
    now = await redis_now_ms(redis)
    while now <= moment_ms:
        await asyncio.sleep((moment_ms - now + 1) / 1000)
        now = await redis_now_ms(redis)


async def places(services: Container, event_id: int) -> dict[str, int]:
    """The queue's places in Postgres, once the order writer has stored the joins so far:
    user id -> score."""
    await store_orders(services)
    async with services.sessionmaker() as session:
        rows = await session.execute(
            select(QueuePlace.user_id, QueuePlace.score).where(QueuePlace.event_id == event_id)
        )
        return {row.user_id: row.score for row in rows}
