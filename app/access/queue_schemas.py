from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class QueueState(StrEnum):
    WAITING = "waiting"
    ADMITTED = "admitted"
    CLOSED = "closed"


class ClosedReason(StrEnum):
    SOLD_OUT = "sold_out"
    ENDED = "ended"


class QueueRead(BaseModel):
    """The caller's state in an event's waiting room (fields that do not apply are left
    out)."""

    model_config = ConfigDict(populate_by_name=True)

    state: QueueState
    position: int | None = Field(
        default=None,
        description="Your place in the queue's order (1: the first), the same while you "
        "wait; absent before the start (the order is drawn at the start) and once admitted "
        "or closed.",
    )
    estimated_wait_seconds: int | None = Field(
        default=None,
        description="Until your admission, at the queue's admission rate; absent before the start.",
    )
    pass_: str | None = Field(
        default=None,
        alias="pass",
        description="Once admitted: show it as X-Seckill-Pass to buy (valid pass_seconds).",
    )
    reason: ClosedReason | None = None
