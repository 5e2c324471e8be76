from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, Integer, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class JobStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JobKind(StrEnum):
    COUPON_GRANT = "coupon_grant"
    LOTTERY_PAYOUT = "lottery_payout"  # a lottery's won coupons and points paid out


class Job(Base):
    """A background job: its input, its progress (`done` of `total`) and its lease.

    A runner holds the lease (`lease_until`) while it works and extends it with every
    step it commits; a job whose lease ran out is taken over by the next runner, which
    continues from `done`."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'done', 'failed')", name="status_known"),
        CheckConstraint("done >= 0 AND done <= total", name="progress_in_range"),
        # A retried request with the same Idempotency-Key finds the job it started.
        Index("uq_jobs_kind_idempotency_key", "kind", "idempotency_key", unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    # The job's input (a grant's user ids: large); loaded by its runner only.
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, deferred=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    done: Mapped[int] = mapped_column(Integer, server_default="0")
    total: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
