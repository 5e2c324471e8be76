"""Id types shared by the routers (one definition each, not one per router)."""

from typing import Annotated

from fastapi import Path
from pydantic import Field

# Ids are Postgres bigints; bounding them turns a huge number into a 422, not a 500.
MAX_ID = 2**63 - 1
EventId = Annotated[int, Path(ge=1, le=MAX_ID)]
ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]
# Order ids are strings (app/store/order_ids.py).
OrderId = Annotated[str, Path(min_length=1, max_length=64)]

# An `Idempotency-Key` header: printable ASCII without spaces or colons, as it becomes
# part of a Redis key.
IDEMPOTENCY_KEY_MAX_LENGTH = 128
IDEMPOTENCY_KEY_PATTERN = r"^[!-9;-~]+$"
IdempotencyKey = Annotated[
    str, Field(min_length=1, max_length=IDEMPOTENCY_KEY_MAX_LENGTH, pattern=IDEMPOTENCY_KEY_PATTERN)
]
