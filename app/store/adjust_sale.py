"""lua/adjust_sale.lua's KEYS/ARGV builder, reply and outcome (see the script's header)."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import IntEnum

from app.redis import RedisClient
from app.store.keys import GlobalKeys, ItemKeys
from app.store.scripts import ScriptCall, Scripts


class AdjustOutcome(IntEnum):
    APPLIED = 0
    NO_SUCH_ITEM = 2


@dataclass(frozen=True, slots=True)
class SaleAdjustment:
    """One item's change: its allocation before and after, and the terms to set."""

    item_id: int
    allocated_before: int
    allocated_after: int
    terms_version: int = 0
    per_user_limit: int | None = None
    unit_price: Decimal | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Adjusted:
    outcome: AdjustOutcome
    remaining: int
    added: int


def adjust_script_call(*, prefix: str, change: SaleAdjustment) -> ScriptCall:
    keys = ItemKeys(prefix, change.item_id)
    terms: list[str | int] = []
    if change.per_user_limit is not None:
        terms += ["limit", change.per_user_limit]
    if change.unit_price is not None:
        terms += ["price", str(change.unit_price)]
    if change.starts_at is not None:
        terms += ["starts_ms", int(change.starts_at.timestamp() * 1000)]
    if change.ends_at is not None:
        terms += ["ends_ms", int(change.ends_at.timestamp() * 1000)]
    return (
        [keys.sale],
        [
            change.allocated_before,
            change.allocated_after,
            GlobalKeys(prefix).stock_back_channel,
            change.item_id,
            change.terms_version,
            *terms,
        ],
    )


async def adjust_sale(
    *, redis: RedisClient, scripts: Scripts, prefix: str, change: SaleAdjustment
) -> Adjusted:
    keys, args = adjust_script_call(prefix=prefix, change=change)
    code, remaining, added = await scripts.adjust_sale(keys=keys, args=args, client=redis)
    return Adjusted(AdjustOutcome(int(code)), int(remaining), int(added))
