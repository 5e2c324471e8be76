from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from app.auth import AdminUser
from app.db import SessionDep
from app.errors import Forbidden, Unauthorized, problem_responses
from app.events import service
from app.events.errors import EventNotFound, ItemNotFound
from app.events.schemas import EventCreate, EventRead, EventState, ItemRead
from app.inventory.errors import InsufficientStock
from app.pagination import PageDep
from app.state import ServicesDep

public = APIRouter(prefix="/api/v1", tags=["events"])
admin = APIRouter(prefix="/api/v1/admin/events", tags=["events (admin)"])

# Ids are Postgres bigints; bounding them turns a huge number into a 422, not a 500.
EventId = Annotated[int, Path(ge=1, le=2**63 - 1)]
ItemId = Annotated[int, Path(ge=1, le=2**63 - 1)]
AUTH_PROBLEMS = (Unauthorized, Forbidden)


@admin.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(*AUTH_PROBLEMS, InsufficientStock),
)
async def create_event(
    data: EventCreate, session: SessionDep, services: ServicesDep, _: AdminUser
) -> EventRead:
    """Create a flash sale. Each item's stock is allocated from its SKU (an unknown SKU is
    created with exactly that stock) in the same transaction, then loaded into Redis."""
    event = await service.create_event(session=session, data=data)
    await session.commit()
    await service.publish_sale_or_defer(session=session, services=services, items=event.items)
    return await service.get_event(session=session, services=services, event_id=event.id)


async def _set_paused(
    event_id: int, paused: bool, session: SessionDep, services: ServicesDep
) -> EventRead:
    event = await service.set_paused(session=session, event_id=event_id, paused=paused)
    await session.commit()
    await service.publish_sale(session=session, services=services, items=event.items)
    return await service.get_event(session=session, services=services, event_id=event_id)


@admin.post("/{event_id}/pause", responses=problem_responses(*AUTH_PROBLEMS, EventNotFound))
async def pause_event(
    event_id: EventId, session: SessionDep, services: ServicesDep, _: AdminUser
) -> EventRead:
    """Stop selling at once (purchases answer `paused`) until resumed."""
    return await _set_paused(event_id, True, session, services)


@admin.post("/{event_id}/resume", responses=problem_responses(*AUTH_PROBLEMS, EventNotFound))
async def resume_event(
    event_id: EventId, session: SessionDep, services: ServicesDep, _: AdminUser
) -> EventRead:
    return await _set_paused(event_id, False, session, services)


@public.get("/events")
async def list_events(
    session: SessionDep,
    services: ServicesDep,
    page: PageDep,
    state: Annotated[EventState | None, Query(description="Filter by sale window.")] = None,
) -> list[EventRead]:
    """Events by start time, each item with its live `remaining` stock and `state`."""
    return await service.list_events(
        session=session, services=services, state=state, limit=page.limit, offset=page.offset
    )


@public.get("/events/{event_id}", responses=problem_responses(EventNotFound))
async def get_event(event_id: EventId, session: SessionDep, services: ServicesDep) -> EventRead:
    return await service.get_event(session=session, services=services, event_id=event_id)


@public.get("/items/{item_id}", responses=problem_responses(ItemNotFound))
async def get_item(item_id: ItemId, session: SessionDep, services: ServicesDep) -> ItemRead:
    return await service.get_item(session=session, services=services, item_id=item_id)
