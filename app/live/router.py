import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from app.auth import AdminUser
from app.container import Container, ContainerDep
from app.db import SessionDep
from app.errors import Forbidden, Unauthorized, problem_responses
from app.events.errors import EventNotFound
from app.ids import EventId
from app.live import service
from app.live.schemas import EventStats, LiveBoard

admin = APIRouter(prefix="/api/v1/admin/events", tags=["live sale (admin)"])
public = APIRouter(prefix="/api/v1/events", tags=["events"])
ADMIN_PROBLEMS = (Unauthorized, Forbidden, EventNotFound)


@admin.get("/{event_id}/stats", responses=problem_responses(*ADMIN_PROBLEMS))
async def stats(
    event_id: EventId, session: SessionDep, services: ContainerDep, _: AdminUser
) -> EventStats:
    """The sale's live numbers, at most a second behind: participants (distinct users who
    tried, HyperLogLog estimate), attempts, accepted and paid orders and units, GMV,
    conversion, and per item remaining/allocated stock, low-stock flag, sold-out time."""
    return await service.event_stats(session=session, services=services, event_id=event_id)


async def _stat_events(
    request: Request, services: Container, event_id: int, limit: int | None
) -> AsyncIterator[str]:
    sent = 0
    while limit is None or sent < limit:
        # A session per message: a stream may last hours, a connection must not.
        async with services.sessionmaker() as session:
            numbers = await service.event_stats(
                session=session, services=services, event_id=event_id
            )
        yield f"event: stats\nid: {sent}\ndata: {numbers.model_dump_json()}\n\n"
        sent += 1
        if limit is not None and sent >= limit:
            return
        await asyncio.sleep(services.settings.stats_stream_interval_seconds)
        if await request.is_disconnected():
            return


@admin.get(
    "/{event_id}/stats/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "`event: stats` messages"},
        **problem_responses(*ADMIN_PROBLEMS),
    },
)
async def stats_stream(
    event_id: EventId,
    request: Request,
    session: SessionDep,
    services: ContainerDep,
    _: AdminUser,
    limit: Annotated[
        int | None, Query(ge=1, le=100_000, description="Stop after this many messages.")
    ] = None,
) -> StreamingResponse:
    """The stats as Server-Sent Events (`event: stats`, JSON data), one a second (by
    default) for as long as the client listens."""
    await service.event_stats(session=session, services=services, event_id=event_id)  # 404
    return StreamingResponse(
        _stat_events(request, services, event_id, limit),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@public.get("/{event_id}/live", responses=problem_responses(EventNotFound))
async def live(event_id: EventId, session: SessionDep, services: ContainerDep) -> LiveBoard:
    """The public live board: participants so far and each item's remaining stock and
    state, at most a second behind."""
    return await service.live_board(session=session, services=services, event_id=event_id)
