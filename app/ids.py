"""Id types shared by the routers (one definition each, not one per router)."""

from typing import Annotated

from fastapi import Path
from pydantic import Field
from starlette.convertors import Convertor, register_url_convertor

# Ids are Postgres bigints; bounding them turns a huge number into a 422, not a 500.
MAX_ID = 2**63 - 1
# Postgres integers (counts and versions).
MAX_INT = 2**31 - 1
EventId = Annotated[int, Path(ge=1, le=MAX_ID)]
ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]
CampaignId = Annotated[int, Path(ge=1, le=MAX_ID)]
ReturnId = Annotated[int, Path(ge=1, le=MAX_ID)]
ReconciliationId = Annotated[int, Path(ge=1, le=MAX_ID)]


def parse_id(text: str) -> int | None:
    """An id written in decimal (a bigint above 0), or None."""
    # isascii: "²".isdigit() holds, yet int() refuses it.
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


# Order ids are strings (app/store/order_ids.py): a ULID in Crockford base32, then, for a
# seckill order, `-` and the item id.
ORDER_ID_REGEX = "[0-9A-HJKMNP-TV-Z]{26}(?:-[0-9]{1,19})?"
OrderId = Annotated[str, Path(min_length=1, max_length=64, pattern=f"^{ORDER_ID_REGEX}$")]


class _OrderIdConvertor(Convertor[str]):
    regex = ORDER_ID_REGEX

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


# Routes match an order id by its shape, so `/orders/{order_id}` never matches a sibling
# such as `/orders/quote` (whose OPTIONS and 405 then advertised GET). Used in a route
# path as ORDER_ID_PATH; OpenAPI still shows `{order_id}`.
register_url_convertor("order_id", _OrderIdConvertor())
ORDER_ID_PATH = "{order_id:order_id}"

# An `Idempotency-Key` header: printable ASCII without spaces or colons, as it becomes
# part of a Redis key.
IDEMPOTENCY_KEY_MAX_LENGTH = 128
IDEMPOTENCY_KEY_PATTERN = r"^[!-9;-~]+$"
IdempotencyKey = Annotated[
    str, Field(min_length=1, max_length=IDEMPOTENCY_KEY_MAX_LENGTH, pattern=IDEMPOTENCY_KEY_PATTERN)
]
