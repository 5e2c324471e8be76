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
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class Sku(Base):
    __tablename__ = "skus"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("price > 0", name="price_positive"),
    )

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Units in the warehouse not allocated to any sale.
    on_hand: Mapped[int] = mapped_column(Integer)
    # The regular price (checkout) and a free-text category code (coupon scopes); a SKU
    # without a price is not sold outside flash sales.
    price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    category: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class MovementReason(StrEnum):
    RECEIVED = "received"  # goods in: a new SKU or a positive adjustment
    ADJUSTED = "adjusted"  # an operator's correction (count, shrinkage)
    ALLOCATED = "allocated"  # on-hand stock set aside for a flash-sale item
    SOLD = "sold"  # a sale took stock from the item
    RELEASED = "released"  # a cancelled order's units went back on sale
    RESTOCKED = "restocked"  # a cancelled order's units went back on hand (sale over)


class StockMovement(Base):
    """The inventory ledger: one row per stock movement, with the buckets it moved between.

    `on_hand_delta` changes the SKU's unallocated stock, `item_stock_delta` the sale
    stock of an item; summing a column over time gives the bucket's level.
    """

    __tablename__ = "inventory_ledger"
    __table_args__ = (
        # A sale, release or restock is recorded once per order and SKU (a regular order
        # has several), however often it is retried.
        Index(
            "uq_inventory_ledger_order_id_sku_reason",
            "order_id",
            "sku",
            "reason",
            unique=True,
            postgresql_where=text("order_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(ForeignKey("skus.sku"), index=True)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("event_items.id"), index=True)
    order_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(20))
    on_hand_delta: Mapped[int] = mapped_column(Integer, server_default="0")
    item_stock_delta: Mapped[int] = mapped_column(Integer, server_default="0")
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
