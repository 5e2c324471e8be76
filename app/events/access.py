"""An event's access (docs/CONTRACT.md, "Fair access for hyped sales"): open (first come,
first served), a waiting room (queue) or a raffle (draw)."""

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    model_validator,
)

from app.moments import Moment

MAX_BITS = 24  # proof-of-work difficulty ceiling (app/access/pow.py checks it)
MAX_ADMIT_PER_SECOND = 100_000
MAX_PASS_SECONDS = 24 * 3600
MAX_WINNERS = 100_000_000

PowBits = Annotated[StrictInt, Field(ge=0, le=MAX_BITS)]


class OpenAccess(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["open"] = "open"


class QueueAccess(BaseModel):
    """A waiting room: joiners between `opens_at` and the start are shuffled at the
    start, later ones follow in arrival order; `admit_per_second` admitted a second."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["queue"]
    opens_at: Moment
    admit_per_second: StrictInt = Field(ge=1, le=MAX_ADMIT_PER_SECOND)
    pass_seconds: StrictInt = Field(ge=1, le=MAX_PASS_SECONDS)
    pow_bits: PowBits = 0


class DrawAccess(BaseModel):
    """A raffle: registration in a window, winners ranked by HMAC(seed, user id)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["draw"]
    registration_starts_at: Moment
    registration_ends_at: Moment
    winners: StrictInt | None = Field(
        default=None, ge=1, le=MAX_WINNERS, description="Default: the event's total stock."
    )
    purchase_window_seconds: StrictInt = Field(ge=1, le=MAX_PASS_SECONDS)
    pow_bits: PowBits = 0

    @model_validator(mode="after")
    def _window_ordered(self) -> "DrawAccess":
        if self.registration_ends_at <= self.registration_starts_at:
            raise ValueError("registration_ends_at must be after registration_starts_at")
        return self


Access = Annotated[OpenAccess | QueueAccess | DrawAccess, Field(discriminator="mode")]
# Reads the JSON an event row stores.
ACCESS: TypeAdapter[OpenAccess | QueueAccess | DrawAccess] = TypeAdapter(Access)


class AccessUpdate(BaseModel):
    """Mid-sale: the proof-of-work difficulty."""

    model_config = ConfigDict(extra="forbid")

    pow_bits: PowBits
