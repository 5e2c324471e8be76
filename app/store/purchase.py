"""purchase.lua's typed wrapper: its KEYS/ARGV, its reply and its outcome enum (a loop
turn's calls are batched by app/store/batches.py)."""

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from app.auth import User
from app.config import Rate
from app.redis import RedisClient
from app.store.batches import ScriptBatches
from app.store.generations import UNSEEN, Generation
from app.store.keys import ItemKeys
from app.store.rate_limit import rate_limit_args
from app.store.scripts import ScriptCall, Scripts


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
    NOT_ADMITTED = 12


@dataclass(frozen=True, slots=True)
class Decision:
    """The sale's answer: every outcome but RATE_LIMITED."""

    outcome: Outcome
    remaining: int  # the item's stock after the call
    # The accepted or replayed order's id (for KEY_REUSED, the key's first order), else ""
    order_id: str
    # ACCEPTED: the sale's generation including this order (else UNSEEN).
    generation: Generation = UNSEEN


@dataclass(frozen=True, slots=True)
class Throttled:
    """RATE_LIMITED: a rate limit refused the request before the sale was asked."""

    limit: str  # which limit refused: "user" or "address"
    retry_after_us: int  # microseconds until a request would be allowed
    outcome: ClassVar[Outcome] = Outcome.RATE_LIMITED


PurchaseReply = Decision | Throttled


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
    channel: str | None = None,
    admitted_event_id: int | None = None,
) -> ScriptCall:
    """purchase.lua's KEYS and ARGV (see the script's header). Rates None: no limit.
    `admitted_event_id`: the event the buyer's pass admits them to now (None: no valid
    pass), which a gated sale must be."""
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
            channel or "",
            "" if admitted_event_id is None else admitted_event_id,
        ],
    )


def parse_purchase_reply(reply: list[int | str]) -> PurchaseReply:
    code, remaining, order_id, *generation = reply
    outcome = Outcome(int(code))
    if outcome is Outcome.RATE_LIMITED:
        return Throttled(limit=str(order_id), retry_after_us=int(remaining))
    return Decision(
        outcome,
        int(remaining),
        str(order_id),
        Generation(*(int(part) for part in generation)) if generation else UNSEEN,
    )


async def run_purchase(
    scripts: Scripts,
    call: ScriptCall,
    *,
    client: RedisClient | Pipeline | None = None,
) -> PurchaseReply:
    """One purchase attempt (`call` from purchase_script_call): take the stock and queue
    the order, or refuse."""
    script_keys, script_args = call
    reply = await scripts.purchase(keys=script_keys, args=script_args, client=client)
    return parse_purchase_reply(reply)


def purchase_batches(
    redis: Redis, scripts: Scripts, *, max_calls: int
) -> ScriptBatches[PurchaseReply]:
    """The purchases of a loop turn, sent in one round trip (app/store/batches.py)."""
    return ScriptBatches(redis, scripts.purchase, parse_purchase_reply, max_calls=max_calls)
