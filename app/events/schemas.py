from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
)

from app.inventory.schemas import MAX_UNITS, Name, SkuCode

Price = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]
# A day is far beyond any early-access campaign and keeps typos from opening sales weeks early.
MAX_EARLY_ACCESS_SECONDS = 24 * 3600
MAX_ITEMS_PER_EVENT = 100
MAX_PER_USER_LIMIT = 1000
# A window travels to Redis as Unix milliseconds and through asyncpg as UTC; moments
# outside these years are typos that some layer cannot represent.
EARLIEST_MOMENT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_MOMENT = datetime(9999, 1, 1, tzinfo=UTC)


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

    @field_validator("seckill_price")
    @classmethod
    def _not_above_list_price(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        list_price = info.data.get("list_price")
        if list_price is not None and value > list_price:
            raise ValueError("must not be above list_price")
        return value


class EventCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    member_early_access_seconds: StrictInt = Field(default=0, ge=0, le=MAX_EARLY_ACCESS_SECONDS)
    items: list[EventItemCreate] = Field(min_length=1, max_length=MAX_ITEMS_PER_EVENT)

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _representable(cls, value: datetime) -> datetime:
        try:
            utc = value.astimezone(UTC)
        except OverflowError:
            utc = None
        if utc is None or not EARLIEST_MOMENT <= utc < LATEST_MOMENT:
            raise ValueError(
                f"must be between {EARLIEST_MOMENT.isoformat()} and {LATEST_MOMENT.isoformat()}"
            )
        return utc

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        starts_at = info.data.get("starts_at")
        if starts_at is not None and value <= starts_at:
            raise ValueError("must be after starts_at")
        return value

    @field_validator("items")
    @classmethod
    def _distinct_skus(cls, value: list[EventItemCreate]) -> list[EventItemCreate]:
        skus = [item.sku for item in value]
        if len(set(skus)) != len(skus):
            raise ValueError("each SKU may appear once per event")
        return value


class ItemRead(BaseModel):
    id: int
    event_id: int
    sku: str
    name: str
    list_price: Decimal
    seckill_price: Decimal
    stock: int = Field(description="Units allocated to this sale.")
    per_user_limit: int
    remaining: int = Field(description="Units still for sale right now.")
    state: ItemState
    starts_at: datetime
    ends_at: datetime


class EventRead(BaseModel):
    id: int
    name: str
    starts_at: datetime
    ends_at: datetime
    member_early_access_seconds: int
    paused: bool
    state: EventState
    items: list[ItemRead]
