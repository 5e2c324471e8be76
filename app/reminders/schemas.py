from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

DeliveryStatus = Literal["pending", "sent", "failed"]


class ReminderRead(BaseModel):
    event_id: int
    subscribed_at: datetime
    status: DeliveryStatus = Field(
        description="`pending` until the reminder's batch is delivered (`sent`) or given "
        "up after SECKILL_REMINDER_MAX_ATTEMPTS posts (`failed`)."
    )


class ReminderCounts(BaseModel):
    """An event's reminders: `subscribed` = `sent` + `pending` + `failed`."""

    subscribed: int = Field(description="Subscribers (each notified once).")
    sent: int = Field(description="Subscribers whose batch the receiver acknowledged (2xx).")
    pending: int = Field(description="Subscribers not delivered yet (in no batch, or retrying).")
    failed: int = Field(description="Subscribers whose batch was given up.")
