from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    false,
    func,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base
from app.promotions.models import Promotion


class OrderStatus(StrEnum):
    QUEUED = "queued"  # accepted in Redis, not yet in Postgres (never stored in a row)
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    SHIPPED = "shipped"  # paid, and handed to a carrier: still a sale, as paid is
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class OrderKind(StrEnum):
    SECKILL = "seckill"  # one sale item at its seckill price, accepted in Redis
    REGULAR = "regular"  # SKUs at their regular price, with at most one coupon (checkout)


STORED_STATUSES = ", ".join(f"'{s}'" for s in OrderStatus if s is not OrderStatus.QUEUED)
# Orders that count as sold (GMV, paid units, the books): paid, shipped or not. Reports,
# live stats and audits name this, never 'paid' alone.
SOLD_STATUSES = "'paid', 'shipped'"
# Bounds of a shipment's carrier name and tracking number (the columns' lengths).
MAX_CARRIER_LENGTH = 64
MAX_TRACKING_NUMBER_LENGTH = 128
# Orders whose units must come back (to the sale or on hand) exactly once.
RETURNING_STATUSES = "'cancelled', 'refunded'"
# The statuses a buyer may return an order from (app/returns): paid, and shipped where
# the status exists. The one place that says so; approving a return refunds from these.
RETURNABLE_STATUSES = tuple(s for s in OrderStatus if s.value in ("paid", "shipped"))


class TransitionCause(StrEnum):
    """Why an order changed status (order_transitions.cause)."""

    PAYMENT = "payment"  # the owner paid through POST /orders/{id}/pay
    PAYMENT_CALLBACK = "payment_callback"  # the gateway's signed notification
    USER_CANCEL = "user_cancel"
    OPERATOR_CANCEL = "operator_cancel"
    PAYMENT_TIMEOUT = "payment_timeout"  # the worker's sweep
    # The sweep found a charge whose confirmation never came (app/flows/timeouts.py).
    PAYMENT_CHECK = "payment_check"
    REFUND = "refund"  # an operator refunded a paid order
    SHIPMENT = "shipment"  # an operator shipped a paid order (carrier, tracking number)
    RETURN = "return"  # an operator approved the buyer's return (app/returns): refunded


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("user_id", "item_id", "idempotency_key"),
        # The item, of this event (one check per row; see the migration of 2026-12-05).
        ForeignKeyConstraint(["item_id", "event_id"], ["event_items.id", "event_items.event_id"]),
        CheckConstraint(f"status IN ({STORED_STATUSES})", name="status_known"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("kind IN ('seckill', 'regular')", name="kind_known"),
        CheckConstraint(
            "kind <> 'seckill' OR (event_id IS NOT NULL AND item_id IS NOT NULL "
            "AND unit_price IS NOT NULL)",
            name="seckill_has_an_item",
        ),
        CheckConstraint("discount >= 0 AND amount >= 0", name="money_not_negative"),
        # A checkout's Idempotency-Key (seckill orders have theirs per item, above).
        Index(
            "uq_orders_regular_user_id_idempotency_key",
            "user_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("kind = 'regular' AND idempotency_key IS NOT NULL"),
        ),
        Index("ix_orders_user_id_id", "user_id", text("id DESC")),
        # The payment-timeout sweep walks this index only.
        Index(
            "ix_orders_payment_deadline_pending",
            "payment_deadline",
            postgresql_where=text("status = 'pending_payment'"),
        ),
        # The overdue-shipments list: paid orders not shipped yet, by event.
        Index(
            "ix_orders_unshipped_event_id",
            "event_id",
            "paid_at",
            postgresql_where=text("status = 'paid'"),
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

    # Time-sortable: a ULID followed by the item id (see app/store/order_ids.py); a
    # regular order's id is the ULID alone (it is never queued in an item's slot).
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), server_default="seckill")
    user_id: Mapped[str] = mapped_column(String(128))
    # Seckill orders only; a regular order's SKUs are its lines (order_lines).
    event_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    item_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    quantity: Mapped[int] = mapped_column(Integer)  # units in all
    unit_price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    # What the buyer pays: subtotal - discount (the subtotal is amount + discount).
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    discount: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default="0")
    # The user coupon redeemed on this order (kept after the coupon is given back).
    coupon_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    # The campaign the order belongs to (its event's, or its coupon's or promotion's for a
    # regular order), the version of the campaign's rules in force when it was accepted,
    # and the channel it came through (X-Channel; "other" for a code the campaign does
    # not list).
    campaign_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    rules_version: Mapped[int | None] = mapped_column(Integer)
    channel: Mapped[str | None] = mapped_column(String(32))
    # The buyer was a member when the order was placed (the token's `member` claim): a
    # member's seckill order is at the member price, and earns points times the members'
    # multiplier whoever settles it later (the shopper, the gateway, an operator).
    member: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # The daily promotion applied (regular orders), and the day (in the campaign's
    # timezone) whose places it took one of: a cancel that day gives it back.
    promotion_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    promotion_day: Mapped[date | None] = mapped_column(Date)
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
    # Set once, when an operator ships it (status shipped).
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    carrier: Mapped[str | None] = mapped_column(String(MAX_CARRIER_LENGTH))
    tracking_number: Mapped[str | None] = mapped_column(String(MAX_TRACKING_NUMBER_LENGTH))
    # When a cancelled or refunded order's units were back (on sale or on hand), set in
    # the transaction that writes its `released` or `restocked` ledger row.
    stock_returned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The buyer sent the goods back (an approved return, app/returns): the units go back
    # on hand, never on sale, even while the sale is live: a returned unit is not resold
    # in the flash sale. A rebuild of the sale counts them as sold (repository._HOLDS_UNITS).
    goods_returned: Mapped[bool] = mapped_column(Boolean, server_default=false())

    # A regular order's SKUs (none for a seckill order).
    lines: Mapped[list["OrderLine"]] = relationship(order_by="OrderLine.sku", lazy="selectin")
    # Its daily promotion (no foreign key: orders outlive nothing, and the seckill writer's
    # inserts stay as they are); loaded only for orders that have one.
    promotion: Mapped[Promotion | None] = relationship(
        primaryjoin="foreign(Order.promotion_id) == Promotion.id", lazy="selectin", viewonly=True
    )


class OrderTransition(Base):
    """Every status change of an order, with when and why."""

    __tablename__ = "order_transitions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    from_status: Mapped[str] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    cause: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OrderLine(Base):
    """One SKU of a regular order, priced when the order was placed."""

    __tablename__ = "order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "sku"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    sku: Mapped[str] = mapped_column(ForeignKey("skus.sku"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    # In the coupon's scope (counted in the eligible subtotal).
    eligible: Mapped[bool] = mapped_column(Boolean, server_default=true())
