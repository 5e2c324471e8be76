from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class OperatorAction(Base):
    """One operator change, written in the same transaction as the change itself: if the
    change commits, so does its record, and never one without the other."""

    __tablename__ = "operator_actions"
    __table_args__ = (Index("ix_operator_actions_event_id_id", "event_id", text("id DESC")),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(String(128))
    # Dotted verb: event.create, event.pause, item.update, order.refund, ...
    action: Mapped[str] = mapped_column(String(64))
    # What was changed: "event:7", "item:42", "order:01J...-42", "sku:PHONE-1".
    target: Mapped[str] = mapped_column(String(128))
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
