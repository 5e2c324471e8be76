from datetime import UTC, datetime
from decimal import Decimal
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

from app.ids import MAX_ID
from app.inventory.schemas import MAX_UNITS, CategoryCode, Name, Price, SkuCode
from app.moments import Moment

MAX_SCOPE_ENTRIES = 1000
MAX_PER_USER_DAILY_LIMIT = 1000
# A threshold may be zero (every order of the day's first N), never negative.
Threshold = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]


class ScopeCreate(BaseModel):
    """As a coupon's scope: a line counts towards `min_spend` if its SKU or its category
    is listed."""

    model_config = ConfigDict(extra="forbid")

    skus: list[SkuCode] | None = Field(default=None, min_length=1, max_length=MAX_SCOPE_ENTRIES)
    categories: list[CategoryCode] | None = Field(
        default=None, min_length=1, max_length=MAX_SCOPE_ENTRIES
    )

    @model_validator(mode="after")
    def _names_something(self) -> "ScopeCreate":
        if self.skus is None and self.categories is None:
            raise ValueError("a scope names skus, categories or both (leave it out for every SKU)")
        return self


class PromotionCreate(BaseModel):
    """满减 for the first `daily_limit` regular orders of each day (docs/CONTRACT.md,
    "Campaigns")."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    campaign_id: StrictInt | None = Field(default=None, ge=1, le=MAX_ID)
    amount_off: Price
    min_spend: Threshold
    scope: ScopeCreate | None = Field(default=None, description="Absent: every SKU.")
    starts_at: Moment
    ends_at: Moment
    daily_limit: StrictInt = Field(ge=1, le=MAX_UNITS)
    per_user_daily_limit: StrictInt = Field(default=1, ge=1, le=MAX_PER_USER_DAILY_LIMIT)

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        starts_at = info.data.get("starts_at")
        if starts_at is not None and value <= starts_at:
            raise ValueError("must be after starts_at")
        if value <= datetime.now(UTC):
            raise ValueError("the promotion's window has already ended")
        return value


class ScopeRead(BaseModel):
    skus: list[str] | None = None
    categories: list[str] | None = None


class PromotionRead(BaseModel):
    id: int
    name: str
    campaign_id: int | None
    amount_off: Decimal
    min_spend: Decimal
    scope: ScopeRead | None
    starts_at: datetime
    ends_at: datetime
    daily_limit: int
    per_user_daily_limit: int


class AppliedPromotion(BaseModel):
    """The promotion an order (or a quote) takes: its `amount_off` off the eligible
    subtotal (never more than that subtotal; the order's `discount` is what came off)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    amount_off: Decimal
