"""Draw-mode events for tests: made through the admin API, their registration window then
moved in Postgres (the API takes a window in the future only as it is given)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from app.container import Container
from app.events.models import Event
from app.events.schemas import EventRead
from tests.support.factories import Auth, event_spec


def draw_access(
    *,
    opens_in: timedelta = timedelta(seconds=-60),
    lasts: timedelta = timedelta(hours=1),
    winners: int | None = None,
    purchase_window_seconds: int = 600,
    pow_bits: int = 0,
) -> dict[str, Any]:
    starts_at = datetime.now(UTC) + opens_in
    access: dict[str, Any] = {
        "mode": "draw",
        "registration_starts_at": starts_at.isoformat(),
        "registration_ends_at": (starts_at + lasts).isoformat(),
        "purchase_window_seconds": purchase_window_seconds,
        "pow_bits": pow_bits,
    }
    if winners is not None:
        access["winners"] = winners
    return access


async def create_access_event(
    client: httpx.AsyncClient, auth: Auth, access: dict[str, Any], **spec: Any
) -> EventRead:
    """An event with this access, its sale starting in two hours unless `spec` says."""
    spec.setdefault("starts_in", timedelta(hours=2))
    body = {**event_spec(**spec), "access": access}
    response = await client.post("/api/v1/admin/events", json=body, headers=auth.admin())
    assert response.status_code == 201, response.text
    return EventRead.model_validate_json(response.content)


async def close_registration(services: Container, event_id: int) -> None:
    """Move the event's registration window into the past: it closed a second ago."""
    now = datetime.now(UTC)
    await _move_window(services, event_id, now - timedelta(hours=1), now - timedelta(seconds=1))


async def _move_window(
    services: Container, event_id: int, starts_at: datetime, ends_at: datetime
) -> None:
    async with services.sessionmaker() as session, session.begin():
        stored = await session.scalar(select(Event.access).where(Event.id == event_id))
        assert stored is not None
        assert stored["mode"] == "draw"
        access = {
            **stored,
            "registration_starts_at": starts_at.isoformat(),
            "registration_ends_at": ends_at.isoformat(),
        }
        await session.execute(update(Event).where(Event.id == event_id).values(access=access))


async def reopen_registration(services: Container, event_id: int) -> None:
    """Move the event's registration window back around now (as a clock behind would)."""
    now = datetime.now(UTC)
    await _move_window(services, event_id, now - timedelta(hours=1), now + timedelta(hours=1))
