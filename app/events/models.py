from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    Sequence,
    String,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.campaigns.models import Campaign
from app.db import Base

MONEY = Numeric(12, 2)


# Versions of items' terms, never reused: a change applied to Redis whose transaction
# then rolled back leaves its version there, and the next change must still be newer.
TERMS_VERSIONS = Sequence("event_item_terms_versions", metadata=Base.metadata)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("starts_at < ends_at", name="window_ordered"),
        CheckConstraint("member_early_access_seconds >= 0", name="early_access_not_negative"),
        CheckConstraint(
            "(ship_within_days IS NULL) = (ship_by IS NULL)", name="ship_by_with_its_days"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    member_early_access_seconds: Mapped[int] = mapped_column(Integer, server_default="0")
    paused: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # The campaign it is a slot of (None: a sale of its own). It sells nothing, and
    # shoppers do not see it, until the campaign is approved.
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), index=True)
    # How buyers get in (app/events/access.py, as JSON): {"mode": "open"} by default, or a
    # waiting room ("queue") or a raffle ("draw") whose pass every purchase must show.
    access: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("""'{"mode": "open"}'::jsonb""")
    )
    # Orders ship within this many working days after the end (None: no promise), that
    # is by ship_by (app/moments.py), fixed when the event is created or its end moves.
    ship_within_days: Mapped[int | None] = mapped_column(Integer)
    ship_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    items: Mapped[list["EventItem"]] = relationship(
        back_populates="event", order_by="EventItem.id", lazy="selectin"
    )
    campaign: Mapped[Campaign | None] = relationship(lazy="selectin")


class EventItem(Base):
    __tablename__ = "event_items"
    __table_args__ = (
        UniqueConstraint("event_id", "sku"),
        # What an order's (item_id, event_id) references: the item, of its event.
        UniqueConstraint("id", "event_id"),
        CheckConstraint("list_price > 0", name="list_price_positive"),
        CheckConstraint("seckill_price > 0", name="seckill_price_positive"),
        CheckConstraint("seckill_price <= list_price", name="seckill_price_not_above_list"),
        CheckConstraint("stock > 0", name="stock_positive"),
        CheckConstraint("per_user_limit >= 1", name="per_user_limit_positive"),
        CheckConstraint("low_stock_threshold >= 0", name="low_stock_threshold_not_negative"),
        CheckConstraint("member_price > 0", name="member_price_positive"),
        CheckConstraint(
            "member_reserved >= 0 AND member_reserved <= stock", name="member_reserved_in_stock"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    sku: Mapped[str] = mapped_column(ForeignKey("skus.sku"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    list_price: Mapped[Decimal] = mapped_column(MONEY)
    seckill_price: Mapped[Decimal] = mapped_column(MONEY)
    # Units allocated from the SKU to this sale; the live remainder is in Redis.
    stock: Mapped[int] = mapped_column(Integer)
    per_user_limit: Mapped[int] = mapped_column(Integer)
    # The highest limit the item ever had: a limit lowered mid-sale binds later purchases
    # only, so the audit holds earlier buyers to this one.
    peak_per_user_limit: Mapped[int] = mapped_column(Integer)
    # Remaining stock below this flags the item as low on stock (None: never).
    low_stock_threshold: Mapped[int | None] = mapped_column(Integer)
    # Set from TERMS_VERSIONS by each mid-sale change of the terms (the pause included);
    # Redis keeps the newest (adjust_sale.lua, warmup.lua).
    terms_version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # What a member pays (None: the seckill price), and the units only members may take
    # until member_reserved_until; what they leave then is everyone's.
    member_price: Mapped[Decimal | None] = mapped_column(MONEY)
    member_reserved: Mapped[int] = mapped_column(Integer, server_default="0")
    member_reserved_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    event: Mapped[Event] = relationship(back_populates="items", lazy="joined")
