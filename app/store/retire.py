"""retire.lua's typed wrapper: putting away an ended, settled sale's growing keys."""

from enum import IntEnum

from app.redis import RedisClient
from app.store.keys import ItemKeys
from app.store.scripts import ScriptCall, Scripts


class RetireOutcome(IntEnum):
    """retire.lua's return codes (see the script's header)."""

    RETIRED = 0
    OPEN = 1
    UNSETTLED = 2
    NO_SUCH_ITEM = 3


def retire_script_call(keys: ItemKeys) -> ScriptCall:
    """retire.lua's KEYS and ARGV (see the script's header)."""
    return [keys.sale, keys.buyers, keys.orders, keys.queued, keys.released, keys.failures], []


async def retire_sale(redis: RedisClient, scripts: Scripts, keys: ItemKeys) -> RetireOutcome:
    script_keys, script_args = retire_script_call(keys)
    (code,) = await scripts.retire(keys=script_keys, args=script_args, client=redis)
    return RetireOutcome(int(code))
