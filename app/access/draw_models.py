"""A draw's tables: its seed and outcome (`draws`, one row per draw-mode event) and its
registrations (`draw_registrations`, one row per user and event)."""

from datetime import datetime
from enum import IntEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    SmallInteger,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.auth import MAX_USER_ID_LENGTH
from app.db import Base

SEED_LENGTH = 64  # secrets.token_hex(32)
DIGEST_LENGTH = 64  # hex SHA-256


class Outcome(IntEnum):
    """A registration's outcome (draw_registrations.outcome)."""

    REGISTERED = 0  # not drawn yet
    WON = 1
    LOST = 2


class Draw(Base):
    """The seed committed to before the first registration (its SHA-256 is public), and
    the draw once done: `drawn_at`, how many registered and how many won."""

    __tablename__ = "draws"
    __table_args__ = (
        CheckConstraint(
            "(drawn_at IS NULL) = (winners_count IS NULL) AND "
            "(drawn_at IS NULL) = (registrants_count IS NULL)",
            name="drawn_with_counts",
        ),
    )

    event_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("events.id"), primary_key=True)
    seed: Mapped[str] = mapped_column(String(SEED_LENGTH))
    seed_commitment: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    drawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set by the draw: the registrants are fixed from then on, so reads stop counting.
    registrants_count: Mapped[int | None] = mapped_column(Integer)
    winners_count: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DrawRegistration(Base):
    __tablename__ = "draw_registrations"

    # The primary key is the one registration per user and event.
    event_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("draws.event_id"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(MAX_USER_ID_LENGTH), primary_key=True)
    registered_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    outcome: Mapped[int] = mapped_column(SmallInteger, server_default="0")
