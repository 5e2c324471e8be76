from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from app.orders.models import OrderStatus


class OrderRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    user_id: str
    event_id: int
    item_id: int
    quantity: int
    unit_price: Decimal
    amount: Decimal
    status: OrderStatus
    accepted_at: datetime
    payment_deadline: datetime
    paid_at: datetime | None = None
    cancelled_at: datetime | None = None
    refunded_at: datetime | None = None
    payment_reference: str | None = None
