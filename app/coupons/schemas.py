from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.campaigns.models import Phase
from app.coupons.models import Audience, UserCouponStatus
from app.coupons.pricing import CouponKind
from app.ids import MAX_ID
from app.inventory.schemas import MAX_UNITS, CategoryCode, Name, Price, SkuCode
from app.moments import Moment

MAX_TIERS = 10
MAX_SCOPE_ENTRIES = 1000
MAX_PER_USER_LIMIT = 1000
MAX_VALID_DAYS = 3650
# What each kind needs, and what it must not carry.
KIND_FIELDS: dict[CouponKind, set[str]] = {
    CouponKind.AMOUNT_OFF: {"amount_off"},
    CouponKind.PERCENT_OFF: {"percent_off"},
    CouponKind.TIERED: {"tiers"},
}
KIND_OPTIONAL: dict[CouponKind, set[str]] = {CouponKind.PERCENT_OFF: {"max_discount"}}
TERM_FIELDS = {"amount_off", "percent_off", "max_discount", "tiers"}


class TierCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_spend: Price
    amount_off: Price


class ScopeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skus: list[SkuCode] | None = Field(default=None, min_length=1, max_length=MAX_SCOPE_ENTRIES)
    categories: list[CategoryCode] | None = Field(
        default=None, min_length=1, max_length=MAX_SCOPE_ENTRIES
    )


class CouponCreate(BaseModel):
    """A coupon template (see docs/CONTRACT.md, "Coupons and regular checkout")."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: CouponKind
    amount_off: Price | None = None
    percent_off: StrictInt | None = Field(default=None, ge=1, le=99)
    max_discount: Price | None = None
    tiers: list[TierCreate] | None = Field(default=None, min_length=1, max_length=MAX_TIERS)
    min_spend: Price | None = Field(default=None, description="Absent: no threshold.")
    scope: ScopeCreate | None = Field(default=None, description="Absent: every SKU.")
    audience: Audience
    claim_starts_at: Moment | None = Field(
        default=None, description="Required unless `phase` gives the claim window."
    )
    claim_ends_at: Moment | None = None
    valid_until: Moment | None = None
    valid_days_after_claim: StrictInt | None = Field(default=None, ge=1, le=MAX_VALID_DAYS)
    total_quantity: StrictInt = Field(ge=1, le=MAX_UNITS)
    per_user_limit: StrictInt = Field(ge=1, le=MAX_PER_USER_LIMIT)
    campaign_id: StrictInt | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="Of this draft campaign: claimable once it is approved.",
    )
    phase: Phase | None = Field(
        default=None,
        description="The campaign phase whose window is the claim window (instead of "
        "claim_starts_at / claim_ends_at).",
    )
    valid_from: Moment | None = Field(
        default=None, description="Not usable on an order before this."
    )

    @field_validator("amount_off", "percent_off", "max_discount", "tiers")
    @classmethod
    def _fits_the_kind(cls, value: object, info: ValidationInfo) -> object:
        kind = info.data.get("kind")
        if kind is None or info.field_name is None:
            return value
        allowed = KIND_FIELDS[kind] | KIND_OPTIONAL.get(kind, set())
        if value is not None and info.field_name not in allowed:
            raise ValueError(f"not used by a {kind.value} coupon")
        return value

    @field_validator("tiers")
    @classmethod
    def _distinct_thresholds(cls, value: list[TierCreate] | None) -> list[TierCreate] | None:
        if value is not None and len({t.min_spend for t in value}) != len(value):
            raise ValueError("each tier needs its own min_spend")
        return value

    @field_validator("claim_ends_at")
    @classmethod
    def _after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        starts_at = info.data.get("claim_starts_at")
        if value is None:
            return value
        if starts_at is not None and value <= starts_at:
            raise ValueError("must be after claim_starts_at")
        if value <= datetime.now(UTC):
            raise ValueError("the claim window has already ended")
        return value

    @model_validator(mode="after")
    def _one_claim_window(self) -> "CouponCreate":
        given = (self.claim_starts_at is not None, self.claim_ends_at is not None)
        if self.phase is not None:
            if self.campaign_id is None:
                raise ValueError("`phase` is a phase of the coupon's campaign: give campaign_id")
            if any(given):
                raise ValueError("give either `phase` or claim_starts_at and claim_ends_at")
        elif not all(given):
            raise ValueError("give claim_starts_at and claim_ends_at (or a campaign `phase`)")
        if (
            self.valid_from is not None
            and self.valid_until is not None
            and self.valid_from >= self.valid_until
        ):
            raise ValueError("valid_from must be before valid_until")
        return self

    def claim_window(self) -> tuple[datetime, datetime]:
        if self.claim_starts_at is None or self.claim_ends_at is None:
            raise ValueError("no claim window of its own (it takes its campaign phase's)")
        return self.claim_starts_at, self.claim_ends_at

    @field_validator("valid_until")
    @classmethod
    def _after_claim_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        starts_at = info.data.get("claim_starts_at")
        if value is not None and starts_at is not None and value <= starts_at:
            raise ValueError("must be after claim_starts_at")
        return value

    @field_validator("valid_days_after_claim")
    @classmethod
    def _one_validity(cls, value: int | None, info: ValidationInfo) -> int | None:
        if (value is None) == (info.data.get("valid_until") is None) and "valid_until" in (
            info.data
        ):
            raise ValueError("give exactly one of valid_until and valid_days_after_claim")
        return value


class TierRead(BaseModel):
    min_spend: Decimal
    amount_off: Decimal


class ScopeRead(BaseModel):
    skus: list[str] | None = None
    categories: list[str] | None = None


class CouponRead(BaseModel):
    id: int
    name: str
    kind: CouponKind
    amount_off: Decimal | None
    percent_off: int | None
    max_discount: Decimal | None
    tiers: list[TierRead] | None
    min_spend: Decimal | None
    scope: ScopeRead | None
    audience: Audience
    claim_starts_at: datetime
    claim_ends_at: datetime
    valid_until: datetime | None
    valid_days_after_claim: int | None
    total_quantity: int
    per_user_limit: int
    remaining: int = Field(description="Coupons left to claim right now.")
    campaign_id: int | None = None
    phase: Phase | None = None
    valid_from: datetime | None = None


class UserCouponRead(BaseModel):
    """A coupon in the caller's hands; its `id` is what checkout takes as `coupon`."""

    id: str
    coupon_id: int
    status: UserCouponStatus
    valid_until: datetime
    claimed_at: datetime | None = None
    order_id: str | None = Field(default=None, description="The order it was used on.")


class ClaimRead(BaseModel):
    id: str
    coupon_id: int
    status: Literal[UserCouponStatus.AVAILABLE] = UserCouponStatus.AVAILABLE
    valid_until: datetime


class GrantCreate(BaseModel):
    """Either a list of users or every buyer of a flash-sale event."""

    model_config = ConfigDict(extra="forbid")

    user_ids: (
        list[Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00]+$")]] | None
    ) = Field(default=None, min_length=1, max_length=1_000_000)
    buyers_of_event: StrictInt | None = Field(default=None, ge=1, le=MAX_ID)

    @field_validator("buyers_of_event")
    @classmethod
    def _one_target(cls, value: int | None, info: ValidationInfo) -> int | None:
        if (value is None) == (info.data.get("user_ids") is None) and "user_ids" in info.data:
            raise ValueError("give exactly one of user_ids and buyers_of_event")
        return value


class JobAccepted(BaseModel):
    job_id: int
