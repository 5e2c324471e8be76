from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

SkuCode = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
# Postgres text cannot hold NUL; refused here, it is a 422 instead of a driver error.
STORABLE_TEXT = r"^[^\x00]*$"
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=STORABLE_TEXT)]
# Far beyond any warehouse, small enough that sums never overflow a Postgres integer.
MAX_UNITS = 100_000_000


class SkuCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: SkuCode
    name: Name
    on_hand: StrictInt = Field(default=0, ge=0, le=MAX_UNITS)


class StockAdjustmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delta: StrictInt = Field(ge=-MAX_UNITS, le=MAX_UNITS, description="Units in (+) or out (-).")
    note: str | None = Field(default=None, max_length=500, pattern=STORABLE_TEXT)


class SkuRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sku: str
    name: str
    on_hand: int = Field(description="Units in the warehouse not allocated to any sale.")
    created_at: datetime
    updated_at: datetime


class StockMovementRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sku: str
    item_id: int | None
    order_id: str | None
    reason: str
    on_hand_delta: int
    item_stock_delta: int
    note: str | None
    created_at: datetime
