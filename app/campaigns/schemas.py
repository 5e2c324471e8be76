import functools
from datetime import datetime
from decimal import Decimal
from typing import Annotated
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    field_validator,
    model_validator,
)

from app.campaigns.models import CampaignStatus, Phase
from app.ids import MAX_ID
from app.inventory.schemas import STORABLE_TEXT, Name, Price
from app.moments import Moment

MAX_RULES_LENGTH = 20_000
MAX_CHANNELS = 50
MAX_TARGET_COUNT = 1_000_000_000
# Recorded for a channel code the campaign does not list (contract: "other").
OTHER_CHANNEL = "other"
# What an X-Channel code may look like; anything else is recorded as "other".
CHANNEL_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,31}$"

Cost = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
Rules = Annotated[str, Field(min_length=1, max_length=MAX_RULES_LENGTH, pattern=STORABLE_TEXT)]
Reason = Annotated[str, Field(min_length=1, max_length=2000, pattern=STORABLE_TEXT)]
Count = Annotated[StrictInt, Field(ge=1, le=MAX_TARGET_COUNT)]


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def _known_timezone(name: str) -> str:
    # Looked up by name only: ZoneInfo() itself would try paths ("Asia", "../x").
    if name not in _timezones():
        raise ValueError(f"not an IANA timezone name (e.g. Asia/Shanghai): {name!r}")
    return name


Timezone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_known_timezone)]


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: Moment
    ends_at: Moment

    @model_validator(mode="after")
    def _ordered(self) -> "Window":
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class PhasesCreate(BaseModel):
    """Warm-up, peak and return, in this order, not overlapping (one may end as the next
    starts)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    warm_up: Window | None = None
    peak: Window
    return_: Window | None = Field(default=None, alias="return")

    @model_validator(mode="after")
    def _in_order(self) -> "PhasesCreate":
        if self.warm_up is not None and self.warm_up.ends_at > self.peak.starts_at:
            raise ValueError("the warm-up must end by the start of the peak")
        if self.return_ is not None and self.return_.starts_at < self.peak.ends_at:
            raise ValueError("the return phase must start at or after the end of the peak")
        return self

    def window(self, phase: Phase) -> Window | None:
        return {Phase.WARM_UP: self.warm_up, Phase.PEAK: self.peak, Phase.RETURN: self.return_}[
            phase
        ]


class Targets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gmv: Price | None = None
    orders: Count | None = None
    new_buyers: Count | None = None


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        pattern=CHANNEL_PATTERN,
        description="Lower-case letters, digits, `_`, `.`, `-`; at most 32.",
    )
    cost: Cost

    @field_validator("code")
    @classmethod
    def _not_other(cls, value: str) -> str:
        if value == OTHER_CHANNEL:
            raise ValueError(f"`{OTHER_CHANNEL}` is what unknown codes are recorded as")
        return value


Channels = Annotated[list[ChannelCreate], Field(max_length=MAX_CHANNELS)]


def _distinct_codes(channels: list[ChannelCreate] | None) -> list[ChannelCreate] | None:
    if channels is not None and len({c.code for c in channels}) != len(channels):
        raise ValueError("each channel code once")
    return channels


class CampaignCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    timezone: Timezone = "UTC"
    phases: PhasesCreate
    rules: Rules
    targets: Targets | None = None
    channels: Annotated[Channels, AfterValidator(_distinct_codes)] = []
    baseline_campaign_id: StrictInt | None = Field(default=None, ge=1, le=MAX_ID)


class CampaignUpdate(BaseModel):
    """What may change: the name while a draft; rules, targets and channels any time
    but while awaiting approval (each rules change is a new version)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    rules: Rules | None = None
    targets: Targets | None = None
    channels: Annotated[Channels | None, AfterValidator(_distinct_codes)] = None


class Rejection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class CopyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shift_days: StrictInt = Field(ge=-3650, le=3650)


class WindowRead(BaseModel):
    starts_at: datetime
    ends_at: datetime


class PhasesRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    warm_up: WindowRead | None
    peak: WindowRead
    return_: WindowRead | None = Field(alias="return")


class ChannelRead(BaseModel):
    code: str
    cost: Decimal


class TargetsRead(BaseModel):
    gmv: Decimal | None = None
    orders: int | None = None
    new_buyers: int | None = None


class ApprovalRead(BaseModel):
    group: str
    actor: str
    at: datetime


class CampaignPublic(BaseModel):
    """What shoppers see of an approved campaign."""

    id: int
    name: str
    timezone: str
    phases: PhasesRead
    current_phase: Phase | None = Field(
        description="The phase now (None: before the first phase, between or after them)."
    )
    rules: str
    rules_version: int


class CampaignRead(CampaignPublic):
    status: CampaignStatus
    targets: TargetsRead
    channels: list[ChannelRead]
    baseline_campaign_id: int | None
    created_by: str
    submitted_by: str | None
    approvals: list[ApprovalRead] = Field(
        description="This submission's approvals so far (one per required group)."
    )
    missing_approvals: list[str] = Field(description="Groups yet to approve (while pending).")
    approved_at: datetime | None
    created_at: datetime


class RulesRead(BaseModel):
    campaign_id: int
    version: int
    rules: str
    created_at: datetime


class CopyRead(BaseModel):
    campaign: CampaignRead
    events: dict[int, int] = Field(description="Each copied event's id -> its copy's id.")
    coupons: dict[int, int] = Field(description="Each copied coupon's id -> its copy's id.")
    promotions: dict[int, int] = Field(description="Each promotion's id -> its copy's id.")
