"""Reminders' tables, the delivery outbox: one subscription row per (event, user), and
the batches the worker forms from them. A subscription joins one batch, once
(`batch_id` is set from NULL and never changed): that is what keeps a user out of two
batches. Its delivery state is its batch's (`pending` until the batch is `sent` or
`failed`)."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.auth import MAX_USER_ID_LENGTH
from app.db import Base


class BatchStatus(StrEnum):
    PENDING = "pending"  # formed; posted (maybe more than once) but not acknowledged yet
    SENT = "sent"  # the receiver answered 2xx
    FAILED = "failed"  # every attempt failed: given up


class ReminderBatch(Base):
    """Up to `reminder_batch_size` subscribers of one event, posted together. A worker
    holds a batch while it posts it (`leased_until`); a worker that dies leaves the lease
    to run out, and the next one posts the same batch (same id, same users) again."""

    __tablename__ = "reminder_batches"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status_known"),
        CheckConstraint("size > 0", name="size_positive"),
        # The worker's claim: pending batches by when they are due.
        Index(
            "ix_reminder_batches_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    status: Mapped[str] = mapped_column(String(10), server_default=BatchStatus.PENDING.value)
    size: Mapped[int] = mapped_column(Integer)
    # Posts started, a dead worker's included (counted when the batch is claimed).
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReminderSubscription(Base):
    __tablename__ = "reminder_subscriptions"
    __table_args__ = (
        # Batch formation: an event's subscribers not in a batch yet.
        Index(
            "ix_reminder_subscriptions_unbatched",
            "event_id",
            "user_id",
            postgresql_where=text("batch_id IS NULL"),
        ),
    )

    # The primary key is the one subscription per user and event.
    event_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("events.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(MAX_USER_ID_LENGTH), primary_key=True)
    subscribed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    batch_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("reminder_batches.id"), index=True
    )
