from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from app.events.schemas import MAX_PER_USER_LIMIT

# Printable ASCII without spaces or colons: it becomes part of a Redis key.
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[!-9;-~]+$")]


class PurchaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: StrictInt = Field(default=1, ge=1, le=MAX_PER_USER_LIMIT)


class PurchaseAccepted(BaseModel):
    order_id: str
    status: Literal["queued"] = "queued"
