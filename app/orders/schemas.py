from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    computed_field,
    field_validator,
)

from app.inventory.schemas import MAX_UNITS, SkuCode
from app.orders.models import (
    MAX_CARRIER_LENGTH,
    MAX_TRACKING_NUMBER_LENGTH,
    OrderKind,
    OrderStatus,
)
from app.promotions.schemas import AppliedPromotion

MAX_CHECKOUT_LINES = 100
# A claimed coupon's id (app/seckill/order_ids.py: ULID, `-`, template id).
UserCouponId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z-]+$")]


class OrderLineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sku: str
    quantity: int
    unit_price: Decimal
    amount: Decimal
    eligible: bool = Field(description="In the coupon's scope (counted towards its threshold).")


class OrderRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: OrderKind = OrderKind.SECKILL
    user_id: str
    event_id: int | None = Field(description="Seckill orders only.")
    item_id: int | None = Field(description="Seckill orders only.")
    quantity: int = Field(description="Units in all.")
    unit_price: Decimal | None = Field(description="Seckill orders only (see `lines`).")
    amount: Decimal = Field(description="What is charged: the total.")
    discount: Decimal = Decimal("0.00")
    coupon: str | None = Field(
        default=None,
        validation_alias=AliasChoices("coupon", "coupon_id"),
        description="The coupon redeemed on this order.",
    )
    lines: list[OrderLineRead] = Field(default_factory=list)
    promotion: AppliedPromotion | None = Field(
        default=None, description="The daily promotion applied (regular orders)."
    )
    status: OrderStatus
    accepted_at: datetime
    payment_deadline: datetime
    paid_at: datetime | None = None
    cancelled_at: datetime | None = None
    refunded_at: datetime | None = None
    payment_reference: str | None = None
    shipped_at: datetime | None = None
    carrier: str | None = Field(default=None, description="Shipped orders: who carries it.")
    tracking_number: str | None = Field(default=None, description="Shipped orders: the carrier's.")
    campaign_id: int | None = Field(default=None, description="The campaign it belongs to.")
    rules_version: int | None = Field(
        default=None, description="The campaign's rules version in force when accepted."
    )
    channel: str | None = Field(
        default=None,
        description="The X-Channel it came through (`other`: a code the campaign does not list).",
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def subtotal(self) -> Decimal:
        return self.amount + self.discount

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> Decimal:
        return self.amount


class CheckoutLineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: SkuCode
    quantity: StrictInt = Field(default=1, ge=1, le=MAX_UNITS)


class CheckoutCreate(BaseModel):
    """A regular order: SKUs at their price, at most one coupon (a claimed coupon's id)."""

    model_config = ConfigDict(extra="forbid")

    items: list[CheckoutLineCreate] = Field(min_length=1, max_length=MAX_CHECKOUT_LINES)
    coupon: UserCouponId | None = None

    @field_validator("items")
    @classmethod
    def _distinct_skus(cls, value: list[CheckoutLineCreate]) -> list[CheckoutLineCreate]:
        skus = [line.sku for line in value]
        if len(set(skus)) != len(skus):
            raise ValueError("each SKU may appear once per order (raise its quantity)")
        return value


class QuoteLineRead(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price: Decimal
    amount: Decimal
    eligible: bool


class QuoteRead(BaseModel):
    subtotal: Decimal
    discount: Decimal
    total: Decimal
    eligible_subtotal: Decimal = Field(
        description="The lines in the coupon's (or the promotion's) scope."
    )
    coupon: str | None = None
    promotion: AppliedPromotion | None = Field(
        default=None, description="The daily promotion the order would take (no coupon)."
    )
    lines: list[QuoteLineRead]


class ShipmentCreate(BaseModel):
    """A paid order handed to a carrier."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    carrier: str = Field(min_length=1, max_length=MAX_CARRIER_LENGTH)
    tracking_number: str = Field(
        min_length=1, max_length=MAX_TRACKING_NUMBER_LENGTH, pattern=r"^[0-9A-Za-z._/-]+$"
    )


class OverdueShipmentRead(OrderRead):
    """A paid order not shipped by its event's ship-by."""

    ship_by: datetime = Field(description="When it should have shipped (the event's ship-by).")
