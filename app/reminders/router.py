from fastapi import APIRouter, Response, status

from app.auth import AdminUser, CurrentUser
from app.db import SessionDep
from app.errors import Ended, Forbidden, Unauthorized, problem_responses
from app.events.errors import EventNotFound
from app.ids import EventId
from app.moments import utc_now
from app.reminders import service
from app.reminders.errors import SaleStarted
from app.reminders.schemas import ReminderCounts, ReminderRead

router = APIRouter(prefix="/api/v1/events", tags=["reminders"])
admin = APIRouter(prefix="/api/v1/admin/events", tags=["reminders (admin)"])


@router.post(
    "/{event_id}/reminders",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(Unauthorized, EventNotFound, SaleStarted, Ended),
)
async def subscribe(event_id: EventId, session: SessionDep, user: CurrentUser) -> ReminderRead:
    """Reserve (预约) a reminder of an upcoming sale: SECKILL_REMINDER_LEAD_SECONDS before
    it starts, the caller's id is posted to the notification webhook, once. Repeat-safe
    (201 each time). A live sale answers 409 `invalid_state`, an ended one 409 `ended`."""
    return await service.subscribe(session=session, event_id=event_id, user=user, now=utc_now())


@router.delete(
    "/{event_id}/reminders",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(Unauthorized, EventNotFound),
)
async def unsubscribe(event_id: EventId, session: SessionDep, user: CurrentUser) -> None:
    """Cancel the caller's reminder. Repeat-safe: 204 whether or not there was one. A
    reminder already handed to the delivery (its batch formed at the reminder time)
    cannot be called back and is delivered."""
    await service.unsubscribe(session=session, event_id=event_id, user=user)


@admin.get(
    "/{event_id}/reminders",
    responses=problem_responses(Unauthorized, Forbidden, EventNotFound),
)
async def reminder_counts(event_id: EventId, session: SessionDep, _: AdminUser) -> ReminderCounts:
    """The event's reminders: subscribers, and how many were delivered, are pending (in
    no batch yet, or retrying) and were given up."""
    return await service.counts(session=session, event_id=event_id)
