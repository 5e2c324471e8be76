"""Reminders (预约): subscribing, unsubscribing and the counts. Delivery is the worker's
(app/flows/reminders.py), from the outbox these rows are.

The rules, as the contract and the operators see them:
- Subscribing is repeat-safe (201 each time, one row by the primary key). It is open
  until the sale starts: an unknown event, or one shoppers do not see yet, is 404
  `not_found`; a live one 409 `invalid_state` (nothing left to remind of); an ended one
  409 `ended`. A subscription made after the reminder time (lead seconds before the
  start) is still delivered, in a late batch of its own, as long as the sale has not
  ended.
- Unsubscribing is repeat-safe too: 204 whether or not there was a subscription. Once
  the subscription is in a batch (the worker formed it at the reminder time), it stays:
  the batch's users are fixed, so that every post of it carries the same users, and the
  reminder is on its way.
"""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import User
from app.config import Settings
from app.errors import Ended
from app.events import service as events
from app.events.errors import EventNotFound
from app.events.models import Event
from app.reminders import repository
from app.reminders.errors import SaleStarted
from app.reminders.schemas import DeliveryStatus, ReminderCounts, ReminderRead

# A subscription's delivery status is its batch's; in no batch yet, it is pending.
STATUS: dict[str | None, DeliveryStatus] = {
    None: "pending",
    "pending": "pending",
    "sent": "sent",
    "failed": "failed",
}


async def _shown_event(*, session: AsyncSession, event_id: int) -> Event:
    event = await events.get_event_row(session=session, event_id=event_id)
    if not events.shown_to_shoppers(event):
        raise EventNotFound(f"No event {event_id}.")
    return event


async def subscribe(
    *, session: AsyncSession, event_id: int, user: User, now: datetime
) -> ReminderRead:
    """Subscribe `user` to the event's reminder (a repeat answers the first)."""
    event = await _shown_event(session=session, event_id=event_id)
    if now >= event.ends_at:
        raise Ended(f"Event {event_id} has ended.")
    if now >= event.starts_at:
        raise SaleStarted(f"Event {event_id} has started: there is nothing to remind of.")
    await repository.insert_subscription(session, event_id=event_id, user_id=user.id)
    found = await repository.get_subscription(session, event_id=event_id, user_id=user.id)
    assert found is not None, "inserted, or found by the conflict, in this transaction"
    return ReminderRead(
        event_id=found.event_id,
        subscribed_at=found.subscribed_at,
        status=STATUS[found.status],
    )


async def unsubscribe(*, session: AsyncSession, event_id: int, user: User) -> None:
    """Remove the subscription if it is in no batch yet (nothing to remove is fine)."""
    await _shown_event(session=session, event_id=event_id)
    await repository.delete_unbatched(session, event_id=event_id, user_id=user.id)


async def counts_of(*, session: AsyncSession, event_id: int) -> ReminderCounts:
    """The event's reminder counts (the event is not checked: live stats and reports)."""
    found = await repository.counts(session, event_id)
    return ReminderCounts(
        subscribed=found.subscribed,
        sent=found.sent,
        pending=found.subscribed - found.sent - found.failed,
        failed=found.failed,
    )


async def counts(*, session: AsyncSession, event_id: int) -> ReminderCounts:
    """The operators' view: any event, shown to shoppers or not; 404 if there is none."""
    await events.get_event_row(session=session, event_id=event_id)
    return await counts_of(session=session, event_id=event_id)


def backoff_seconds(settings: Settings, *, attempt: int) -> float:
    """Exponential: base, 2 base, 4 base, ... for attempts 1, 2, 3, ..., capped at max."""
    exponent = min(attempt - 1, 60)  # 2**60 base is past any cap; no float overflow
    return float(
        min(
            settings.reminder_backoff_base_seconds * 2**exponent,
            settings.reminder_backoff_max_seconds,
        )
    )


def retry_delay(settings: Settings, *, attempt: int) -> float | None:
    """Seconds before a batch whose post number `attempt` failed is posted again, or
    None: it has had its SECKILL_REMINDER_MAX_ATTEMPTS posts, give it up."""
    if attempt >= settings.reminder_max_attempts:
        return None
    return backoff_seconds(settings, attempt=attempt)
