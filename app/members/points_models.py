"""The points ledger: one entry per (reason, reference), and one balance row per user.

A paid order earns under (`order_paid`, order id) and a refund takes back under
(`order_refunded`, order id); other domains add points under their own reason (a lottery
prize: `lottery_prize`, the prize id). The unique (reason, reference) makes every write
idempotent: paying twice, the webhook and the shopper both settling, or refunding twice
leave one entry each. The balance is the sum of the entries, kept in its own row so that
concurrent writes of one user serialise on it (never negative: a CHECK)."""

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
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.auth import MAX_USER_ID_LENGTH
from app.db import Base


class OrderReason(StrEnum):
    """The ledger's own reasons: what paid and refunded orders write (nobody else may)."""

    PAID = "order_paid"
    REFUNDED = "order_refunded"


class PointEntry(Base):
    __tablename__ = "point_entries"
    __table_args__ = (
        UniqueConstraint("reason", "reference"),
        CheckConstraint("shortfall >= 0", name="shortfall_not_negative"),
        Index("ix_point_entries_user_id_id", "user_id", text("id DESC")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(MAX_USER_ID_LENGTH))
    # Signed: an earning adds, a reversal takes back.
    points: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(40))
    reference: Mapped[str] = mapped_column(String(128))
    # The order an `order_paid` / `order_refunded` entry is for (the reports join on it).
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"), index=True)
    # A reversal that could not take back all the order earned (the points were spent
    # meanwhile): how many it left, since the balance never goes below zero.
    shortfall: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PointBalance(Base):
    __tablename__ = "point_balances"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_not_negative"),)

    user_id: Mapped[str] = mapped_column(String(MAX_USER_ID_LENGTH), primary_key=True)
    balance: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
