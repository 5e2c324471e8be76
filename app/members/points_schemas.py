from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class PointEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    points: int = Field(description="Signed: earned (> 0) or taken back (< 0).")
    reason: str = Field(
        description="`order_paid`, `order_refunded`, or another domain's (`lottery_prize`)."
    )
    reference: str = Field(description="What the entry is for: an order id, a prize id.")
    order_id: str | None
    shortfall: int = Field(
        description="A refund's points already spent, so not taken back (the balance never "
        "goes below zero)."
    )
    created_at: datetime


class PointsRead(BaseModel):
    balance: int
    entries: list[PointEntryRead] = Field(description="Newest first, paginated.")
