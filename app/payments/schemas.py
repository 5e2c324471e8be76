from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.gateways.payment import DECLINED_TOKEN
from app.inventory.schemas import STORABLE_TEXT


class PaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_token: str = Field(
        default="tok_simulated",
        min_length=1,
        max_length=256,
        description=(
            "The payment method as the gateway's client-side SDK tokenised it. The "
            f"simulated gateway accepts anything but {DECLINED_TOKEN!r}."
        ),
    )


class PaymentNotification(BaseModel):
    """The gateway's notification that a charge settled (or failed). Signed: see
    app/payments/signatures.py. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    order_id: str = Field(min_length=1, max_length=64)
    # Stored as the order's payment_reference: text Postgres can hold (no NUL), else a
    # signed notification would fail in the driver instead of answering 422.
    reference: str = Field(
        min_length=1, max_length=128, pattern=STORABLE_TEXT, description="The gateway's charge id."
    )
    amount: Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)] = Field(
        description='Decimal string in the major unit ("19.90"); must equal the order amount.'
    )
    status: Literal["succeeded", "failed"]


class NotificationOutcome(StrEnum):
    RECORDED = "recorded"  # the order is now paid
    DUPLICATE = "duplicate"  # this payment was recorded before: nothing changed
    IGNORED = "ignored"  # a failed charge: the order waits for another payment
    # The order was cancelled (or paid by another charge) first: this charge was refunded.
    REFUNDED = "refunded"


class NotificationAck(BaseModel):
    outcome: NotificationOutcome


class ReconciliationSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    source: str = Field(description="`api` or `cli` (seckill reconcile).")
    first_day: date | None = Field(description="The business days the file's rows fall on.")
    last_day: date | None
    rows: int
    matched: int = Field(description="Rows whose order agrees.")
    mismatches: int = Field(description="Ids listed in the four lists, in all.")


class ReconciliationRead(ReconciliationSummary):
    missing_in_gateway: list[str] = Field(
        description="Orders paid (or refunded) in the period whose charge (refund) is not "
        "in the file."
    )
    missing_in_orders: list[str] = Field(
        description="Charge ids naming no order, or an order not paid or refunded by them."
    )
    amount_mismatch: list[str] = Field(description="Charge ids for another amount.")
    duplicates: list[str] = Field(description="Charge ids charged, or refunded, twice.")
