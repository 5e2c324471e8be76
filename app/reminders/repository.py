"""Every SQL statement on reminders: subscriptions, and the outbox of batches."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.reminders.models import ReminderSubscription


@dataclass(frozen=True, slots=True)
class Subscription:
    event_id: int
    user_id: str
    subscribed_at: datetime
    status: str | None  # its batch's status; None: in no batch yet


@dataclass(frozen=True, slots=True)
class Counts:
    subscribed: int
    sent: int
    failed: int


@dataclass(frozen=True, slots=True)
class ClaimedBatch:
    id: uuid.UUID
    event_id: int
    attempt: int  # this post's number (1 for the first)


async def insert_subscription(session: AsyncSession, *, event_id: int, user_id: str) -> None:
    """The subscription, unless it exists (a repeat is the first one)."""
    await session.execute(
        insert(ReminderSubscription)
        .values(event_id=event_id, user_id=user_id)
        .on_conflict_do_nothing(
            index_elements=[ReminderSubscription.event_id, ReminderSubscription.user_id]
        )
    )


async def insert_subscriptions(
    session: AsyncSession, *, event_id: int, user_ids: list[str]
) -> None:
    """Many subscriptions in one statement (an import of reservations taken elsewhere,
    the bench, tests); the existing ones are kept as they are."""
    await session.execute(
        text(
            """
            INSERT INTO reminder_subscriptions (event_id, user_id)
            SELECT :event_id, unnest(CAST(:users AS text[]))
            ON CONFLICT DO NOTHING
            """
        ),
        {"event_id": event_id, "users": user_ids},
    )


async def get_subscription(
    session: AsyncSession, *, event_id: int, user_id: str
) -> Subscription | None:
    row = (
        await session.execute(
            text(
                """
                SELECT s.event_id, s.user_id, s.subscribed_at, b.status
                FROM reminder_subscriptions s
                LEFT JOIN reminder_batches b ON b.id = s.batch_id
                WHERE s.event_id = :event_id AND s.user_id = :user_id
                """
            ),
            {"event_id": event_id, "user_id": user_id},
        )
    ).one_or_none()
    if row is None:
        return None
    return Subscription(
        event_id=row.event_id,
        user_id=row.user_id,
        subscribed_at=row.subscribed_at,
        status=row.status,
    )


async def delete_unbatched(session: AsyncSession, *, event_id: int, user_id: str) -> bool:
    """Remove the subscription unless it is in a batch already; whether one was removed.
    A batch being formed holds its rows' locks: this waits for it, then finds the row
    batched and leaves it."""
    deleted = await session.scalar(
        text(
            """
            DELETE FROM reminder_subscriptions
            WHERE event_id = :event_id AND user_id = :user_id AND batch_id IS NULL
            RETURNING 1
            """
        ),
        {"event_id": event_id, "user_id": user_id},
    )
    return deleted is not None


async def counts(session: AsyncSession, event_id: int) -> Counts:
    """Subscribers, and those whose batch was delivered or given up (batch sizes summed:
    no scan of the subscriptions beyond their count)."""
    row = (
        await session.execute(
            text(
                """
                SELECT (SELECT count(*) FROM reminder_subscriptions
                        WHERE event_id = :event_id) AS subscribed,
                       coalesce(sum(size) FILTER (WHERE status = 'sent'), 0) AS sent,
                       coalesce(sum(size) FILTER (WHERE status = 'failed'), 0) AS failed
                FROM reminder_batches WHERE event_id = :event_id
                """
            ),
            {"event_id": event_id},
        )
    ).one()
    return Counts(subscribed=int(row.subscribed), sent=int(row.sent), failed=int(row.failed))


async def due_events(session: AsyncSession, *, lead_seconds: int, limit: int) -> list[int]:
    """Events whose reminder time has come, not ended, with subscribers in no batch yet."""
    rows = await session.scalars(
        text(
            """
            SELECT e.id FROM events e
            WHERE e.starts_at <= now() + make_interval(secs => :lead) AND e.ends_at > now()
              AND EXISTS (SELECT 1 FROM reminder_subscriptions s
                          WHERE s.event_id = e.id AND s.batch_id IS NULL)
            ORDER BY e.starts_at, e.id
            LIMIT :limit
            """
        ),
        {"lead": lead_seconds, "limit": limit},
    )
    return list(rows.all())


# One statement: the batch row and its members are written together. Rows another
# transaction is batching (or unsubscribing) are skipped, and `batch_id IS NULL` is
# rechecked under the lock, so a subscription joins exactly one batch. The foreign key
# is checked at the statement's end, when the batch row exists.
_FORM_BATCH = text(
    """
    WITH picked AS (
        SELECT user_id FROM reminder_subscriptions
        WHERE event_id = :event_id AND batch_id IS NULL
        ORDER BY user_id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), batch AS (
        INSERT INTO reminder_batches (id, event_id, size)
        SELECT :batch_id, :event_id, count(*) FROM picked HAVING count(*) > 0
        RETURNING id
    ), joined AS (
        UPDATE reminder_subscriptions s SET batch_id = batch.id
        FROM batch, picked
        WHERE s.event_id = :event_id AND s.user_id = picked.user_id
        RETURNING 1
    )
    SELECT count(*) FROM joined
    """
)


async def form_batch(
    session: AsyncSession, *, event_id: int, batch_id: uuid.UUID, limit: int
) -> int:
    """A batch of up to `limit` of the event's unbatched subscribers; its size (0: none
    left, and no batch row)."""
    size = await session.scalar(
        _FORM_BATCH, {"event_id": event_id, "batch_id": batch_id, "limit": limit}
    )
    return int(size or 0)


async def claim_batch(session: AsyncSession, *, lease_seconds: float) -> ClaimedBatch | None:
    """The pending batch due first that nobody holds, now held for `lease_seconds` and
    its attempt counted; None if there is none."""
    row = (
        await session.execute(
            text(
                """
                UPDATE reminder_batches b
                SET attempts = b.attempts + 1,
                    leased_until = now() + make_interval(secs => :lease)
                FROM (
                    SELECT id FROM reminder_batches
                    WHERE status = 'pending' AND next_attempt_at <= now()
                      AND (leased_until IS NULL OR leased_until < now())
                    ORDER BY next_attempt_at
                    LIMIT 1
                    FOR UPDATE SKIP LOCKED
                ) due
                WHERE b.id = due.id
                RETURNING b.id, b.event_id, b.attempts
                """
            ),
            {"lease": lease_seconds},
        )
    ).one_or_none()
    if row is None:
        return None
    return ClaimedBatch(id=row.id, event_id=row.event_id, attempt=row.attempts)


async def batch_users(session: AsyncSession, batch_id: uuid.UUID) -> list[str]:
    """The batch's users, in one order: every post of the batch has the same body."""
    rows = await session.scalars(
        text("SELECT user_id FROM reminder_subscriptions WHERE batch_id = :id ORDER BY user_id"),
        {"id": batch_id},
    )
    return list(rows.all())


async def mark_sent(session: AsyncSession, batch_id: uuid.UUID) -> int | None:
    """The batch delivered (any of its posts' 2xx is the truth); its size, or None if it
    was settled already."""
    size = await session.scalar(
        text(
            """
            UPDATE reminder_batches
            SET status = 'sent', finished_at = now(), leased_until = NULL, last_error = NULL
            WHERE id = :id AND status = 'pending'
            RETURNING size
            """
        ),
        {"id": batch_id},
    )
    return None if size is None else int(size)


async def mark_attempt_failed(
    session: AsyncSession,
    *,
    batch_id: uuid.UUID,
    attempt: int,
    retry_in: float | None,
    error: str,
) -> int | None:
    """After a failed post: due again in `retry_in` seconds, or given up (None). Only
    the latest attempt settles it: a worker whose lease ran out while it waited (another
    has posted since) changes nothing. The batch's size if it was given up."""
    row = (
        await session.execute(
            text(
                """
                UPDATE reminder_batches
                SET status = CASE WHEN CAST(:retry_in AS float8) IS NULL
                                  THEN 'failed' ELSE 'pending' END,
                    next_attempt_at = now() + make_interval(
                        secs => coalesce(CAST(:retry_in AS float8), 0)),
                    finished_at = CASE WHEN CAST(:retry_in AS float8) IS NULL
                                       THEN now() END,
                    leased_until = NULL,
                    last_error = :error
                WHERE id = :id AND status = 'pending' AND attempts = :attempt
                RETURNING status, size
                """
            ),
            {"id": batch_id, "attempt": attempt, "retry_in": retry_in, "error": error[:500]},
        )
    ).one_or_none()
    if row is None or row.status != "failed":
        return None
    return int(row.size)
