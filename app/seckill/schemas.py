from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from app.events.schemas import MAX_PER_USER_LIMIT


class PurchaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: StrictInt = Field(default=1, ge=1, le=MAX_PER_USER_LIMIT)
    # Accepted only to refuse it clearly: seckill prices take no coupons (422
    # coupon_not_applicable, nothing taken).
    coupon: str | None = Field(default=None, max_length=64)


class PurchaseAccepted(BaseModel):
    order_id: str
    status: Literal["queued"] = "queued"
