"""release.lua's typed wrapper: its KEYS/ARGV, its reply and its outcome enum."""

from dataclasses import dataclass
from enum import IntEnum

from redis.asyncio.client import Pipeline

from app.redis import RedisClient
from app.store.keys import ItemKeys
from app.store.scripts import ScriptCall, Scripts


class ReleaseOutcome(IntEnum):
    """release.lua's return codes (see the script's header)."""

    RELEASED = 0
    ALREADY_RELEASED = 1
    NO_SUCH_ITEM = 2
    CLOSED = 3


@dataclass(frozen=True, slots=True)
class ReleaseReply:
    outcome: ReleaseOutcome
    remaining: int  # the item's stock after the call


def release_script_call(
    *, keys: ItemKeys, order_id: str, user_id: str, quantity: int, channel: str
) -> ScriptCall:
    """release.lua's KEYS and ARGV (see the script's header)."""
    return (
        [keys.sale, keys.buyers, keys.released],
        [order_id, user_id, quantity, channel, keys.item_id],
    )


def parse_release_reply(reply: list[int]) -> ReleaseReply:
    code, remaining = reply
    return ReleaseReply(ReleaseOutcome(int(code)), int(remaining))


async def run_release(
    scripts: Scripts,
    call: ScriptCall,
    *,
    client: RedisClient | Pipeline | None = None,
) -> ReleaseReply | None:
    """Give an order's units back to the sale, at most once per order (`call` from
    release_script_call). Through a pipeline (`client`) the call is only queued: it
    returns None, and the pipeline's reply goes through parse_release_reply()."""
    script_keys, script_args = call
    reply = await scripts.release(keys=script_keys, args=script_args, client=client)
    if isinstance(client, Pipeline):
        return None
    return parse_release_reply(reply)
