from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.events.access import Access, DrawAccess, OpenAccess, QueueAccess
from app.ids import MAX_ID
from app.inventory.schemas import MAX_UNITS, Name, SkuCode
from app.moments import Moment

Price = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]
# The largest amount an order row can hold (orders.amount is numeric(12, 2)). An order's
# amount is its unit price times its quantity, and a quantity is at most the per-user
# limit, so every item must keep seckill_price x per_user_limit within it: otherwise an
# accepted order could never be stored.
MAX_ORDER_AMOUNT = Decimal("9999999999.99")
# A day is far beyond any early-access campaign and keeps typos from opening sales weeks early.
MAX_EARLY_ACCESS_SECONDS = 24 * 3600
MAX_ITEMS_PER_EVENT = 100
MAX_PER_USER_LIMIT = 1000
# Working days an event may promise to ship within: two months of working days is beyond
# any promise a sale makes, and keeps typos (700) out of buyers' sight.
MAX_SHIP_WITHIN_DAYS = 40


def order_amount_problem(seckill_price: Decimal, per_user_limit: int) -> str | None:
    """Why an item with these terms could accept an order no order row can hold (None:
    it cannot). Creation and every mid-sale change check it."""
    if seckill_price * per_user_limit > MAX_ORDER_AMOUNT:
        return (
            f"seckill_price x per_user_limit must not exceed {MAX_ORDER_AMOUNT} "
            "(the largest order amount that can be stored)"
        )
    return None


class ItemState(StrEnum):
    UPCOMING = "upcoming"
    LIVE = "live"
    SOLD_OUT = "sold_out"
    ENDED = "ended"
    PAUSED = "paused"


class EventState(StrEnum):
    UPCOMING = "upcoming"
    LIVE = "live"
    ENDED = "ended"


class EventItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: SkuCode
    name: Name
    list_price: Price
    seckill_price: Price
    stock: StrictInt = Field(gt=0, le=MAX_UNITS, description="Units allocated to this sale.")
    per_user_limit: StrictInt = Field(ge=1, le=MAX_PER_USER_LIMIT)
    member_price: Price | None = Field(
        default=None, description="What members pay (at most seckill_price); orders keep it."
    )
    member_reserved: StrictInt = Field(
        default=0,
        ge=0,
        le=MAX_UNITS,
        description="Units of `stock` only members may take until member_reserved_until.",
    )
    member_reserved_until: Moment | None = Field(
        default=None,
        description="When what members left of the reserve joins the general stock "
        "(default: the sale's end).",
    )

    @field_validator("seckill_price")
    @classmethod
    def _not_above_list_price(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        list_price = info.data.get("list_price")
        if list_price is not None and value > list_price:
            raise ValueError("must not be above list_price")
        return value

    @model_validator(mode="after")
    def _orders_fit_the_books(self) -> "EventItemCreate":
        if (problem := order_amount_problem(self.seckill_price, self.per_user_limit)) is not None:
            raise ValueError(problem)
        if self.member_price is not None and self.member_price > self.seckill_price:
            raise ValueError("member_price must not be above seckill_price")
        if self.member_reserved > self.stock:
            raise ValueError("member_reserved must not be above stock")
        if self.member_reserved_until is not None and not self.member_reserved:
            raise ValueError("member_reserved_until needs member_reserved")
        return self


class EventCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    starts_at: Moment
    ends_at: Moment
    member_early_access_seconds: StrictInt = Field(default=0, ge=0, le=MAX_EARLY_ACCESS_SECONDS)
    items: list[EventItemCreate] = Field(min_length=1, max_length=MAX_ITEMS_PER_EVENT)
    access: Access = Field(
        default_factory=OpenAccess,
        description="open (first come, first served), queue (a waiting room) or draw (a raffle).",
    )
    campaign_id: StrictInt | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="A slot of this draft campaign (inside its peak); sells once it is approved.",
    )
    ship_within_days: StrictInt | None = Field(
        default=None,
        ge=0,
        le=MAX_SHIP_WITHIN_DAYS,
        description="Orders ship within this many working days after the sale ends "
        "(Saturdays, Sundays and SECKILL_SHIPPING_HOLIDAYS skipped); 0: by the end of the "
        "day it ends. Unset: no promise (no ship-by).",
    )

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        starts_at = info.data.get("starts_at")
        if starts_at is not None and value <= starts_at:
            raise ValueError("must be after starts_at")
        return value

    @field_validator("access")
    @classmethod
    def _before_the_sale(
        cls, value: OpenAccess | QueueAccess | DrawAccess, info: ValidationInfo
    ) -> OpenAccess | QueueAccess | DrawAccess:
        """A waiting room opens before the sale does (the joiners before the start are
        shuffled at the start); a draw registers, then draws, before the sale opens."""
        starts_at = info.data.get("starts_at")
        if starts_at is None:  # refused on its own
            return value
        if isinstance(value, QueueAccess) and value.opens_at >= starts_at:
            raise ValueError("the queue's opens_at must be before starts_at")
        if isinstance(value, DrawAccess):
            if value.registration_starts_at >= value.registration_ends_at:
                raise ValueError("registration_starts_at must be before registration_ends_at")
            if value.registration_ends_at > starts_at:
                raise ValueError("registration_ends_at must not be after starts_at")
        return value

    @field_validator("items")
    @classmethod
    def _distinct_skus(cls, value: list[EventItemCreate]) -> list[EventItemCreate]:
        skus = [item.sku for item in value]
        if len(set(skus)) != len(skus):
            raise ValueError("each SKU may appear once per event")
        return value

    @model_validator(mode="after")
    def _reserves_within_the_sale(self) -> "EventCreate":
        for item in self.items:
            until = item.member_reserved_until
            if until is not None and not self.starts_at < until <= self.ends_at:
                raise ValueError(
                    f"item {item.sku}: member_reserved_until must be after starts_at and "
                    "not after ends_at"
                )
        return self


class ItemUpdate(BaseModel):
    """A mid-sale change of one item; every field optional, at least one given."""

    model_config = ConfigDict(extra="forbid")

    add_stock: StrictInt | None = Field(
        default=None, gt=0, le=MAX_UNITS, description="Units to allocate from the SKU now."
    )
    per_user_limit: StrictInt | None = Field(default=None, ge=1, le=MAX_PER_USER_LIMIT)
    seckill_price: Price | None = Field(
        default=None, description="Price of orders accepted from now on."
    )
    low_stock_threshold: StrictInt | None = Field(
        default=None,
        ge=0,
        le=MAX_UNITS,
        description="Remaining stock below this flags the item as low (null: never).",
    )

    @model_validator(mode="after")
    def _something(self) -> "ItemUpdate":
        if not self.model_fields_set:
            raise ValueError(
                "give at least one of add_stock, per_user_limit, seckill_price, low_stock_threshold"
            )
        for name in ("add_stock", "per_user_limit", "seckill_price"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self


class EventUpdate(BaseModel):
    """A mid-sale change of an event's window: extend or shorten it."""

    model_config = ConfigDict(extra="forbid")

    ends_at: Moment


class ItemRead(BaseModel):
    id: int
    event_id: int
    sku: str
    name: str
    list_price: Decimal
    seckill_price: Decimal
    stock: int = Field(description="Units allocated to this sale.")
    per_user_limit: int
    low_stock_threshold: int | None = None
    member_price: Decimal | None = None
    member_reserved: int = 0
    member_reserved_until: datetime | None = None
    remaining: int = Field(description="Units still for sale right now.")
    state: ItemState
    starts_at: datetime
    ends_at: datetime


class EventRead(BaseModel):
    id: int
    name: str
    campaign_id: int | None = None
    access: Access = Field(default_factory=OpenAccess)
    starts_at: datetime
    ends_at: datetime
    member_early_access_seconds: int
    paused: bool
    state: EventState
    ship_within_days: int | None = None
    ship_by: datetime | None = Field(
        default=None,
        description="When its paid orders must have shipped: the end (midnight, in the "
        "business timezone) of the ship_within_days-th working day after the end day.",
    )
    items: list[ItemRead]
