from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

SkuCode = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
# Postgres text cannot hold NUL; refused here, it is a 422 instead of a driver error.
STORABLE_TEXT = r"^[^\x00]*$"
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=STORABLE_TEXT)]
# A money amount in the currency's major unit, as Numeric(12, 2) stores it.
Price = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]
MAX_MONEY = Decimal("9999999999.99")
# A free-text category code (coupon scopes name it).
CategoryCode = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00\s]+$")]
# Far beyond any warehouse, small enough that sums never overflow a Postgres integer.
MAX_UNITS = 100_000_000


class SkuCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: SkuCode
    name: Name
    on_hand: StrictInt = Field(default=0, ge=0, le=MAX_UNITS)
    price: Price | None = Field(
        default=None, description="Regular price (decimal string); needed for checkout."
    )
    category: CategoryCode | None = Field(
        default=None, description="Free-text category code, for coupon scopes."
    )


class SkuUpdate(BaseModel):
    """Set a SKU's regular price and/or category (a SKU a sale created has neither)."""

    model_config = ConfigDict(extra="forbid")

    price: Price | None = None
    category: CategoryCode | None = None


class StockAdjustmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delta: StrictInt = Field(ge=-MAX_UNITS, le=MAX_UNITS, description="Units in (+) or out (-).")
    note: str | None = Field(default=None, max_length=500, pattern=STORABLE_TEXT)


class SkuRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sku: str
    name: str
    on_hand: int = Field(description="Units in the warehouse not allocated to any sale.")
    price: Decimal | None
    category: str | None
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
