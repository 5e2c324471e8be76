from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from app.access.stats import AccessStats
from app.members.stats import MembersReport
from app.reminders.schemas import ReminderCounts
from app.returns.models import ReturnReason
from app.returns.stats import REFUND_RATE, RETURNS_BY_REASON


class ReportTotals(BaseModel):
    participants: int | None = Field(
        description="Distinct users who tried to buy (live stats' estimate; null if the "
        "sale's counters are gone from Redis)."
    )
    buyers: int = Field(description="Distinct users with an order.")
    orders: int
    units: int
    pending_orders: int
    paid_orders: int
    paid_units: int
    unpaid_orders: int = Field(description="Cancelled, by the user or by the timeout.")
    cancelled_orders: int
    cancelled_units: int
    timed_out_orders: int = Field(description="Cancelled by the payment timeout.")
    refunded_orders: int
    refunded_units: int
    gmv: Decimal = Field(description="Amount of paid orders (refunded ones excluded).")
    refunded_amount: Decimal
    conversion: float | None = Field(description="buyers / participants.")
    payment_rate: float | None = Field(description="paid orders / orders.")
    average_order_value: Decimal | None = Field(description="gmv / paid orders.")
    first_sale_at: datetime | None
    time_to_first_sale_seconds: float | None
    member_orders: int = Field(description="Orders placed by members (of orders).")
    member_units: int
    member_paid_units: int
    member_gmv: Decimal = Field(description="Amount of members' paid orders (of gmv).")


class ShippingReport(BaseModel):
    """How the sale's paid orders shipped against its promise (app/orders/shipping.py)."""

    ship_within_days: int | None = Field(description="The promise (null: none made).")
    ship_by: datetime | None
    shipped_orders: int
    awaiting_orders: int = Field(description="Paid, not shipped yet.")
    overdue_orders: int = Field(description="Paid, not shipped, and past ship_by now.")
    shipped_late_orders: int = Field(description="Shipped after ship_by.")
    median_hours_to_ship: float | None = Field(description="From paid to shipped.")
    p95_hours_to_ship: float | None = Field(description="From paid to shipped.")


class ItemReport(BaseModel):
    id: int
    sku: str
    name: str
    allocated: int
    orders: int
    units: int
    paid_units: int
    cancelled_units: int
    refunded_units: int
    gmv: Decimal
    member_units: int = Field(description="Units of members' orders (of units).")
    member_paid_units: int
    member_gmv: Decimal
    first_sale_at: datetime | None
    sold_out_at: datetime | None
    sell_out_seconds: float | None = Field(description="From the sale's start to sold out.")
    returns_by_reason: dict[ReturnReason, int] = Field(description=RETURNS_BY_REASON)
    refund_rate: float | None = Field(description=REFUND_RATE)


class MinutePoint(BaseModel):
    minute: datetime
    item_id: int
    orders: int
    units: int
    paid_units: int
    gmv: Decimal


class Comparison(BaseModel):
    event_id: int
    name: str
    totals: ReportTotals
    change: dict[str, float | None] = Field(
        description="This sale's figure / the other's, less 1 (0.1 = 10% more)."
    )


class EventReport(BaseModel):
    event_id: int
    name: str
    starts_at: datetime
    ends_at: datetime
    generated_at: datetime
    totals: ReportTotals
    items: list[ItemReport]
    series: list[MinutePoint] = Field(description="Per minute and item, by acceptance time.")
    compared_with: Comparison | None = None
    access: AccessStats | None = Field(
        default=None, description="A queue or draw sale's places, admissions, draw, passes used."
    )
    reminders: ReminderCounts = Field(
        description="Reminders (预约): subscribers, and how many were notified (sent), are "
        "still pending and were given up (failed)."
    )
    members: MembersReport | None = Field(
        default=None,
        description="Points the sale's orders issued and took back; invites accepted during "
        "the sale and rewarded on its orders.",
    )
    shipping: ShippingReport | None = Field(
        default=None, description="Shipments: counts, late ones, hours from paid to shipped."
    )
    returns_by_reason: dict[ReturnReason, int] = Field(description=RETURNS_BY_REASON)
    refund_rate: float | None = Field(description=REFUND_RATE)


@dataclass(frozen=True, slots=True)
class Timeline:
    """Units accepted per item, cumulative, at every moment of `moments` (the origin, then
    the end of each bucket of `bucket_seconds`): `units[item_id][k]` were accepted
    before `moments[k]`."""

    bucket_seconds: float
    moments: list[datetime]
    units: dict[int, list[int]]
