from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from app.access.stats import AccessStats
from app.events.schemas import EventState, ItemState
from app.members.stats import MembersReport
from app.reminders.schemas import ReminderCounts
from app.returns.models import ReturnReason
from app.returns.stats import REFUND_RATE, RETURNS_BY_REASON


class ItemStats(BaseModel):
    id: int
    name: str
    state: ItemState
    remaining: int = Field(description="Units for sale right now (Redis).")
    allocated: int = Field(description="Units allocated to the sale (stock added included).")
    attempts: int
    participants: int = Field(description="Distinct users who tried this item (estimate).")
    accepted_orders: int
    accepted_units: int
    member_units: int = Field(description="Units members took (of accepted_units).")
    member_reserved_left: int = Field(
        description="Units only members may still take (0 once the reserve has ended)."
    )
    paid_orders: int
    paid_units: int
    gmv: Decimal
    low_stock_threshold: int | None
    low_stock: bool = Field(description="remaining < low_stock_threshold.")
    sold_out_at: datetime | None = Field(description="When the stock ran out, if it is out.")


class EventStats(BaseModel):
    event_id: int
    at: datetime = Field(description="When these numbers were read.")
    state: EventState
    paused: bool
    starts_at: datetime
    ends_at: datetime
    participants: int = Field(
        description="Distinct users who tried to buy (HyperLogLog estimate, within 2%)."
    )
    attempts: int
    accepted_orders: int
    accepted_units: int
    member_units: int = Field(description="Units members took (of accepted_units).")
    paid_orders: int
    paid_units: int
    gmv: Decimal = Field(description="Amount of paid orders (shipped ones included).")
    overdue_shipments: int = Field(
        default=0, description="Paid orders not shipped by the event's ship-by (now past)."
    )
    conversion: float = Field(description="Users with an accepted order / participants.")
    items: list[ItemStats]
    access: AccessStats | None = Field(
        default=None, description="A queue or draw sale's places, admissions, draw, passes used."
    )
    reminders: ReminderCounts = Field(
        description="Reminders (预约): subscribers, and how many were notified, are pending, "
        "were given up."
    )
    members: MembersReport = Field(
        description="Points the sale's orders issued and took back; invites accepted during "
        "it and rewarded on its orders."
    )
    returns_by_reason: dict[ReturnReason, int] = Field(description=RETURNS_BY_REASON)
    refund_rate: float | None = Field(description=REFUND_RATE)


class LiveItem(BaseModel):
    id: int
    remaining: int
    state: ItemState


class LiveBoard(BaseModel):
    """The public live board of a sale (实时播报)."""

    event_id: int
    starts_at: datetime
    participants: int
    waiting: int = Field(
        description="Shoppers who reserved a reminder (预约) of this sale: "
        '"12,345 waiting for 10:00".'
    )
    items: list[LiveItem]


class LotteryPrizeStats(BaseModel):
    id: int
    name: str
    kind: str
    quantity: int
    won: int = Field(description="Wins stored in Postgres.")
    remaining: int | None = Field(description="Units left in Redis now (None: not loaded).")
    paid: int
    pending_approval: int


class LotteryStats(BaseModel):
    """A lottery's live numbers (the dashboard's lottery panel)."""

    lottery_id: int
    name: str
    draws: int = Field(description="Draws stored in Postgres (won or not).")
    drawers: int
    frozen: bool = Field(description="Redis lost or rolled back its counters: not drawing.")
    pending_approvals: int
    prizes: list[LotteryPrizeStats]
