from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.returns.models import ReturnReason, ReturnStatus


class ReturnCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: ReturnReason
    note: str | None = Field(
        default=None, description="At most SECKILL_RETURN_NOTE_MAX_LENGTH characters."
    )


class ReturnRequested(BaseModel):
    id: int
    status: ReturnStatus


class ReturnReject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=1,
        pattern=r"\S",
        description="Why (shown to the buyer); at most SECKILL_RETURN_NOTE_MAX_LENGTH characters.",
    )


class ReturnRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    order_id: str
    user_id: str
    event_id: int | None
    campaign_id: int | None
    reason: ReturnReason
    note: str | None
    status: ReturnStatus
    rejection_reason: str | None
    decided_by: str | None
    requested_at: datetime
    decided_at: datetime | None
