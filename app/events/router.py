from typing import Annotated

from fastapi import APIRouter, Query, status

from app.auth import AdminUser, User
from app.container import ContainerDep
from app.db import SessionDep
from app.errors import (
    Forbidden,
    InvalidState,
    Recovering,
    Unauthorized,
    ValidationFailed,
    problem_responses,
)
from app.events import controls, service
from app.events.access import AccessUpdate
from app.events.errors import EventNotFound, ItemNotFound
from app.events.schemas import (
    EventCreate,
    EventRead,
    EventState,
    EventUpdate,
    ItemRead,
    ItemUpdate,
)
from app.ids import EventId, ItemId
from app.inventory.errors import InsufficientStock
from app.moments import utc_now
from app.pagination import PageDep

public = APIRouter(prefix="/api/v1", tags=["events"])
admin = APIRouter(prefix="/api/v1/admin/events", tags=["events (admin)"])
admin_items = APIRouter(prefix="/api/v1/admin/items", tags=["events (admin)"])

AUTH_PROBLEMS = (Unauthorized, Forbidden)


@admin.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(*AUTH_PROBLEMS, InsufficientStock),
)
async def create_event(
    data: EventCreate, session: SessionDep, services: ContainerDep, user: AdminUser
) -> EventRead:
    """Create a flash sale. Each item's stock is allocated from its SKU (an unknown SKU is
    created with exactly that stock) in the same transaction, then loaded into Redis."""
    event = await service.create_event(session=session, services=services, data=data, actor=user)
    return await service.get_event(session=session, services=services, event_id=event.id)


async def _set_paused(
    event_id: int, paused: bool, session: SessionDep, services: ContainerDep, user: User
) -> EventRead:
    await service.set_paused(
        session=session, services=services, actor=user, event_id=event_id, paused=paused
    )
    return await service.get_event(session=session, services=services, event_id=event_id)


# A live change is in force when answered 200; 503 `recovering` if Redis cannot take it
# now (nothing changed, `Retry-After`).
LIVE_PROBLEMS = (*AUTH_PROBLEMS, EventNotFound, Recovering)


@admin.post("/{event_id}/pause", responses=problem_responses(*LIVE_PROBLEMS))
async def pause_event(
    event_id: EventId, session: SessionDep, services: ContainerDep, user: AdminUser
) -> EventRead:
    """Stop selling at once (purchases answer `paused`) until resumed; 503 `recovering`
    (nothing changed) if the live sale cannot take it now."""
    return await _set_paused(event_id, True, session, services, user)


@admin.post("/{event_id}/resume", responses=problem_responses(*LIVE_PROBLEMS))
async def resume_event(
    event_id: EventId, session: SessionDep, services: ContainerDep, user: AdminUser
) -> EventRead:
    return await _set_paused(event_id, False, session, services, user)


CHANGE_PROBLEMS = (*AUTH_PROBLEMS, InvalidState, ValidationFailed, Recovering)


@admin.patch("/{event_id}", responses=problem_responses(*CHANGE_PROBLEMS, EventNotFound))
async def update_event(
    event_id: EventId,
    data: EventUpdate,
    session: SessionDep,
    services: ContainerDep,
    user: AdminUser,
) -> EventRead:
    """Extend or shorten a sale that has not ended (`ends_at` in the future); in force on
    the live sale when answered (503 `recovering`, nothing changed, if the live sale
    cannot take it now). 409 `invalid_state` once the sale has ended."""
    await controls.update_event(
        session=session,
        services=services,
        actor=user,
        event_id=event_id,
        data=data,
        now=utc_now(),
    )
    return await service.get_event(session=session, services=services, event_id=event_id)


@admin.patch(
    "/{event_id}/access",
    responses=problem_responses(*AUTH_PROBLEMS, EventNotFound, InvalidState, ValidationFailed),
)
async def update_access(
    event_id: EventId,
    data: AccessUpdate,
    session: SessionDep,
    services: ContainerDep,
    user: AdminUser,
) -> EventRead:
    """Change a queue or draw event's proof-of-work difficulty (`pow_bits`), mid-sale
    too: joins and registrations from the answer on ask for it. Audit-logged. 409
    `invalid_state` for an open event."""
    await service.set_pow_bits(
        session=session, services=services, actor=user, event_id=event_id, data=data
    )
    return await service.get_event(session=session, services=services, event_id=event_id)


@admin.post("/{event_id}/end", responses=problem_responses(*CHANGE_PROBLEMS, EventNotFound))
async def end_event(
    event_id: EventId, session: SessionDep, services: ContainerDep, user: AdminUser
) -> EventRead:
    """End a sale now (purchases answer `ended`); an upcoming sale is closed before it
    opens. 409 `invalid_state` if it has already ended."""
    await controls.end_event(
        session=session, services=services, actor=user, event_id=event_id, now=utc_now()
    )
    return await service.get_event(session=session, services=services, event_id=event_id)


@admin_items.patch(
    "/{item_id}",
    responses=problem_responses(*CHANGE_PROBLEMS, ItemNotFound, InsufficientStock),
)
async def update_item(
    item_id: ItemId,
    data: ItemUpdate,
    session: SessionDep,
    services: ContainerDep,
    user: AdminUser,
) -> ItemRead:
    """Change a sale item while it runs: `add_stock` allocates more units from its SKU
    (409 `insufficient_stock` if the SKU has not that many), `per_user_limit` binds
    purchases from now on (earlier ones stand), `seckill_price` prices orders accepted
    from now on, `low_stock_threshold` sets when the item is flagged as low on stock.
    The change is in force on the live sale when answered, atomically, and is recorded
    in the audit log (`remaining` in the answer counts the added stock); 503
    `recovering` (nothing changed, `Retry-After`) if the live sale cannot take it now.
    `seckill_price` x `per_user_limit` must fit an order's amount, as at creation (422).
    409 `invalid_state` once the sale has ended."""
    change = await controls.update_item(
        session=session,
        services=services,
        actor=user,
        item_id=item_id,
        data=data,
        now=utc_now(),
    )
    item = await service.get_item(session=session, services=services, item_id=item_id)
    return controls.as_applied(item, change)


@admin.get("", responses=problem_responses(*AUTH_PROBLEMS))
async def list_events_for_operators(
    session: SessionDep,
    services: ContainerDep,
    _: AdminUser,
    page: PageDep,
    state: Annotated[EventState | None, Query(description="Filter by sale window.")] = None,
    paused: Annotated[bool | None, Query(description="Only paused (true) or running.")] = None,
) -> list[EventRead]:
    """Every event (operators), by start time, filtered by sale window and pause."""
    return await service.list_events(
        session=session,
        services=services,
        state=state,
        paused=paused,
        limit=page.limit,
        offset=page.offset,
    )


@public.get("/events")
async def list_events(
    session: SessionDep,
    services: ContainerDep,
    page: PageDep,
    state: Annotated[EventState | None, Query(description="Filter by sale window.")] = None,
) -> list[EventRead]:
    """Events by start time, each item with its live `remaining` stock and `state`."""
    return await service.list_events(
        session=session,
        services=services,
        state=state,
        limit=page.limit,
        offset=page.offset,
        shopper=True,
    )


@public.get("/events/{event_id}", responses=problem_responses(EventNotFound))
async def get_event(event_id: EventId, session: SessionDep, services: ContainerDep) -> EventRead:
    return await service.get_event(
        session=session, services=services, event_id=event_id, shopper=True
    )


@public.get("/items/{item_id}", responses=problem_responses(ItemNotFound))
async def get_item(item_id: ItemId, session: SessionDep, services: ContainerDep) -> ItemRead:
    return await service.get_item(session=session, services=services, item_id=item_id, shopper=True)
