from datetime import datetime

from pydantic import BaseModel


class PrizeLine(BaseModel):
    prize_id: int
    name: str
    kind: str
    quantity: int
    won: int
    remaining: int  # quantity less every stored win (a rejected item's unit stays drawn)
    paid: int
    pending_approval: int


class LotteryReport(BaseModel):
    """A lottery's section of the reports: draws, wins per prize, what remains, what waits
    for an operator. From Postgres exactly (draws the writer has not stored yet show a
    moment later)."""

    lottery_id: int
    name: str
    starts_at: datetime
    ends_at: datetime
    draws: int
    drawers: int
    wins: int
    win_rate: float | None
    pending_approvals: int
    prizes: list[PrizeLine]
    generated_at: datetime
