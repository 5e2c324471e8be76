from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class QueuePlace(Base):
    """A shopper's place in an event's waiting room, stored by the order writer from the
    queue's joins stream (or with its admission, if that comes first): what a Redis that
    lost or rolled back the queue is rebuilt from, with the places still queued, with the
    same scores (the same order) and the same admissions (the same pass windows)."""

    __tablename__ = "queue_places"
    __table_args__ = (UniqueConstraint("event_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    user_id: Mapped[str] = mapped_column(String(128))
    # The place's score in the queue's sorted set (app/store/queue.py): a secret random
    # 52-bit number for a join before the start, 2^52 + `id` (arrival order) after it.
    score: Mapped[int] = mapped_column(BigInteger)
    # When queue.lua took it (Redis's clock, as the stream entry's id): the hot-store check
    # compares the newest with the stream's last id.
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # When the queue first admitted it (Redis's clock): the pass is valid from then.
    admitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
