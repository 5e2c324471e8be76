from datetime import datetime
from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from app.members.invites_models import RewardStatus

InviteCodeText = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class InviteCodeRead(BaseModel):
    code: str = Field(description="URL-safe; the same every time you ask.")


class InviteRead(BaseModel):
    """An accepted invite, as the invitee sees it (the inviter stays private)."""

    model_config = ConfigDict(from_attributes=True)

    code: str
    accepted_at: datetime
    reward_status: RewardStatus = Field(
        description="`waiting` for your first paid order; `granted`: you and your inviter "
        "each get one coupon; `failed`: no reward could be granted."
    )
