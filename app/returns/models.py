from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class ReturnReason(StrEnum):
    """The fixed reasons a buyer picks from (the reports count each)."""

    DAMAGED = "damaged"
    WRONG_ITEM = "wrong_item"
    NOT_AS_DESCRIBED = "not_as_described"
    CHANGED_MIND = "changed_mind"
    OTHER = "other"


class ReturnStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"  # the order was refunded, its goods went back on hand
    REJECTED = "rejected"


def _known(values: type[StrEnum]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class OrderReturn(Base):
    """A buyer's request to return an order, and the operator's decision."""

    __tablename__ = "order_returns"
    __table_args__ = (
        CheckConstraint(f"reason IN ({_known(ReturnReason)})", name="reason_known"),
        CheckConstraint(f"status IN ({_known(ReturnStatus)})", name="status_known"),
        CheckConstraint(
            "status <> 'rejected' OR rejection_reason IS NOT NULL", name="rejection_has_reason"
        ),
        # One open return per order: a second request while one waits is refused, even
        # two at once. A rejected or approved one no longer counts.
        Index(
            "uq_order_returns_order_id_requested",
            "order_id",
            unique=True,
            postgresql_where=text("status = 'requested'"),
        ),
        Index("ix_order_returns_event_id_id", "event_id", text("id DESC")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(128))
    # The order's, copied so the operators' list and the reports filter without a join.
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    campaign_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    reason: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    requested_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
