"""retire.lua's typed wrapper: putting away an ended, settled sale's growing keys."""

from enum import IntEnum

from app.redis import RedisClient
from app.store.keys import ItemKeys
from app.store.scripts import Scripts


class RetireOutcome(IntEnum):
    """retire.lua's return codes (see the script's header)."""

    RETIRED = 0
    OPEN = 1
    UNSETTLED = 2
    NO_SUCH_ITEM = 3


async def retire_sale(redis: RedisClient, scripts: Scripts, keys: ItemKeys) -> RetireOutcome:
    (code,) = await scripts.retire(
        keys=[keys.sale, keys.buyers, keys.orders, keys.queued, keys.released, keys.failures],
        args=[],
        client=redis,
    )
    return RetireOutcome(int(code))
