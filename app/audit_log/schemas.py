from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class OperatorActionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    event_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
