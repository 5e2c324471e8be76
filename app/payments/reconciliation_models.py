from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, DateTime, Integer, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class Reconciliation(Base):
    """One settlement file compared with the orders: the counts and every id named."""

    __tablename__ = "reconciliations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    # Who ran it: `api` (POST /admin/reconciliations) or `cli` (seckill reconcile).
    source: Mapped[str] = mapped_column(String(10))
    # The business days (business_timezone) the file's rows fall on.
    first_day: Mapped[date | None] = mapped_column(Date)
    last_day: Mapped[date | None] = mapped_column(Date)
    rows: Mapped[int] = mapped_column(Integer)
    matched: Mapped[int] = mapped_column(Integer)
    mismatches: Mapped[int] = mapped_column(Integer)
    # Lists of ids (order ids for missing_in_gateway, charge ids for the others).
    missing_in_gateway: Mapped[list[Any]] = mapped_column(JSONB)
    missing_in_orders: Mapped[list[Any]] = mapped_column(JSONB)
    amount_mismatch: Mapped[list[Any]] = mapped_column(JSONB)
    duplicates: Mapped[list[Any]] = mapped_column(JSONB)
