"""A lottery as created and read, a draw's answer, a won prize, a check-in."""

from datetime import date, datetime

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.ids import MAX_ID, MAX_INT
from app.inventory.schemas import Name
from app.lottery.models import PrizeKind, WinStatus
from app.moments import Moment

# Prizes a lottery may list in a request body; the operator's own bound is the setting
# `lottery_max_prizes` (checked by the service, within this).
MAX_PRIZES_IN_BODY = 1000


class PrizeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: PrizeKind
    coupon_id: StrictInt | None = Field(default=None, ge=1, le=MAX_ID)
    points: StrictInt | None = Field(default=None, ge=1, le=MAX_INT)
    quantity: StrictInt = Field(ge=0, le=MAX_INT)
    weight: StrictInt = Field(ge=0, le=MAX_INT)

    @model_validator(mode="after")
    def _fits_the_kind(self) -> "PrizeCreate":
        if (self.kind is PrizeKind.COUPON) != (self.coupon_id is not None):
            raise ValueError("coupon_id: a coupon prize names its coupon, no other prize does")
        if (self.kind is PrizeKind.POINTS) != (self.points is not None):
            raise ValueError("points: a points prize says how many, no other prize does")
        return self


class LotteryCreate(BaseModel):
    """A lottery (docs/CONTRACT.md "Members, reminders, points, invites, lottery").

    A draw lands on a prize with chance weight / (no_prize_weight + every prize's weight);
    a prize out of stock keeps its share, and a draw landing on it wins nothing."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    starts_at: Moment
    ends_at: Moment
    draws_per_user_per_day: StrictInt = Field(ge=1, le=MAX_INT)
    no_prize_weight: StrictInt = Field(default=0, ge=0, le=MAX_INT)
    prizes: list[PrizeCreate] = Field(min_length=1, max_length=MAX_PRIZES_IN_BODY)

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        starts_at = info.data.get("starts_at")
        if starts_at is not None and value <= starts_at:
            raise ValueError("must be after starts_at")
        return value


class PrizeRead(BaseModel):
    id: int
    name: str
    kind: PrizeKind
    coupon_id: int | None
    points: int | None
    quantity: int
    weight: int


class LotteryRead(BaseModel):
    id: int
    name: str
    starts_at: datetime
    ends_at: datetime
    draws_per_user_per_day: int
    no_prize_weight: int
    prizes: list[PrizeRead]


class DrawnPrize(PrizeRead):
    """A prize won by a draw: the prize, and `win_id`, the won prize's id (GET
    /me/prizes; POST /admin/prizes/{win_id}/approve for an item)."""

    win_id: str


class DrawRead(BaseModel):
    prize: DrawnPrize | None  # None: no win


class WonPrizeRead(BaseModel):
    id: str  # the win's id (the draw's)
    lottery_id: int
    prize: PrizeRead
    status: WinStatus
    won_at: datetime
    paid_at: datetime | None


class CheckInRead(BaseModel):
    day: date
    streak: int
