"""purchase.lua's typed wrapper: its KEYS/ARGV, its reply and its outcome enum."""

from dataclasses import dataclass
from enum import IntEnum

from redis.asyncio.client import Pipeline

from app.auth import User
from app.config import Rate
from app.redis import RedisClient
from app.store.generations import UNSEEN, Generation
from app.store.keys import ItemKeys
from app.store.rate_limit import rate_limit_args
from app.store.scripts import Scripts


class Outcome(IntEnum):
    """purchase.lua's return codes (see the script's header)."""

    ACCEPTED = 0
    REPLAYED = 1
    NO_SUCH_ITEM = 2
    PAUSED = 3
    NOT_STARTED = 4
    ENDED = 5
    LIMIT_EXCEEDED = 6
    SOLD_OUT = 7
    BAD_QUANTITY = 8
    RATE_LIMITED = 9
    RECOVERING = 10
    KEY_REUSED = 11


@dataclass(frozen=True, slots=True)
class PurchaseReply:
    outcome: Outcome
    # The item's stock after the call; for RATE_LIMITED, microseconds until a request
    # would be allowed.
    remaining: int
    # The accepted or replayed order's id, else ""; for RATE_LIMITED, which limit
    # refused ("user" or "address").
    order_id: str
    # ACCEPTED: the sale's generation including this order (else UNSEEN).
    generation: Generation = UNSEEN


def purchase_script_call(
    *,
    keys: ItemKeys,
    user: User,
    quantity: int,
    order_id: str,
    idempotency_key: str | None,
    idempotency_ttl_seconds: int,  # how long a record outlives the sale's end
    user_rate: Rate | None = None,
    address: str | None = None,
    address_rate: Rate | None = None,
    seen: Generation = UNSEEN,
) -> tuple[list[str], list[str | int]]:
    """purchase.lua's KEYS and ARGV (see the script's header). Rates None: no limit."""
    # Keys the script does not read (no Idempotency-Key, a limit off) are stood in for by
    # any key of the item's slot, so the call stays single-slot on a cluster.
    idempotency = keys.idempotency(user.id, idempotency_key) if idempotency_key else keys.sale
    if address is None:
        address_rate = None
    return (
        [
            keys.sale,
            keys.buyers,
            idempotency,
            keys.orders,
            keys.queued,
            keys.user_rate(user.id) if user_rate else keys.sale,
            keys.address_rate(address) if address and address_rate else keys.sale,
            keys.participants,
            keys.stats,
            keys.converted,
        ],
        [
            user.id,
            quantity,
            "1" if user.member else "0",
            order_id,
            idempotency_key or "",
            idempotency_ttl_seconds,
            keys.item_id,
            *rate_limit_args(user_rate),
            *rate_limit_args(address_rate),
            seen.epoch,
            seen.seq,
        ],
    )


def parse_purchase_reply(reply: list[int | str]) -> PurchaseReply:
    code, remaining, order_id, *generation = reply
    return PurchaseReply(
        Outcome(int(code)),
        int(remaining),
        str(order_id),
        Generation(*(int(part) for part in generation)) if generation else UNSEEN,
    )


async def run_purchase(
    scripts: Scripts,
    call: tuple[list[str], list[str | int]],
    *,
    client: RedisClient | Pipeline | None = None,
) -> PurchaseReply:
    """One purchase attempt (`call` from purchase_script_call): take the stock and queue
    the order, or refuse."""
    script_keys, script_args = call
    reply = await scripts.purchase(keys=script_keys, args=script_args, client=client)
    return parse_purchase_reply(reply)
