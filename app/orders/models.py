from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class OrderStatus(StrEnum):
    QUEUED = "queued"  # accepted in Redis, not yet in Postgres (never stored in a row)
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


STORED_STATUSES = ", ".join(f"'{s}'" for s in OrderStatus if s is not OrderStatus.QUEUED)
# Orders whose units must come back (to the sale or on hand) exactly once.
RETURNING_STATUSES = "'cancelled', 'refunded'"


class TransitionCause(StrEnum):
    """Why an order changed status (order_transitions.cause)."""

    PAYMENT = "payment"  # the owner paid through POST /orders/{id}/pay
    PAYMENT_CALLBACK = "payment_callback"  # the gateway's signed notification
    USER_CANCEL = "user_cancel"
    OPERATOR_CANCEL = "operator_cancel"
    PAYMENT_TIMEOUT = "payment_timeout"  # the worker's sweep
    REFUND = "refund"  # an operator refunded a paid order


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("user_id", "item_id", "idempotency_key"),
        CheckConstraint(f"status IN ({STORED_STATUSES})", name="status_known"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_orders_user_id_id", "user_id", text("id DESC")),
        # The payment-timeout sweep walks this index only.
        Index(
            "ix_orders_payment_deadline_pending",
            "payment_deadline",
            postgresql_where=text("status = 'pending_payment'"),
        ),
        # The stock-return outbox: cancelled or refunded orders whose units are not back
        # yet. Nearly always empty, so the worker's retry query costs nothing.
        Index(
            "ix_orders_stock_return_due",
            "id",
            postgresql_where=text(
                f"status IN ({RETURNING_STATUSES}) AND stock_returned_at IS NULL"
            ),
        ),
    )

    # Time-sortable: a ULID followed by the item id (see app/seckill/order_ids.py).
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("event_items.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    status: Mapped[str] = mapped_column(String(20))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    # When Redis took the stock; the row itself is written a little later.
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payment_deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refunded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    payment_reference: Mapped[str | None] = mapped_column(String(128))
    # When a cancelled or refunded order's units were back (on sale or on hand), set in
    # the transaction that writes its `released` or `restocked` ledger row.
    stock_returned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OrderTransition(Base):
    """Every status change of an order, with when and why."""

    __tablename__ = "order_transitions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    from_status: Mapped[str] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    cause: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
