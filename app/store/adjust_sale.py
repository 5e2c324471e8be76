"""lua/adjust_sale.lua's KEYS/ARGV builder, reply and outcome (see the script's header)."""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from redis.asyncio import RedisCluster

from app.moments import clock_ms
from app.redis import RedisClient
from app.store.keys import GlobalKeys, ItemKeys
from app.store.scripts import ScriptCall, Scripts
from app.store.warmup import SaleTerms, terms_fields


class AdjustOutcome(IntEnum):
    APPLIED = 0
    NO_SUCH_ITEM = 2
    TOO_LATE = 3


@dataclass(frozen=True, slots=True)
class SaleAdjustment:
    """One item's change: its allocation before and after, and its whole terms after
    the change (None: a stock-only change)."""

    item_id: int
    allocated_before: int
    allocated_after: int
    terms: SaleTerms | None = None


@dataclass(frozen=True, slots=True)
class Adjusted:
    outcome: AdjustOutcome
    remaining: int
    added: int


def adjust_script_call(*, prefix: str, change: SaleAdjustment, apply_by_ms: int = 0) -> ScriptCall:
    keys = ItemKeys(prefix, change.item_id)
    terms = change.terms
    return (
        [keys.sale],
        [
            change.allocated_before,
            change.allocated_after,
            GlobalKeys(prefix).stock_back_channel,
            change.item_id,
            terms.version if terms is not None else 0,
            apply_by_ms,
            *(terms_fields(terms) if terms is not None else []),
        ],
    )


async def item_clock_ms(redis: RedisClient, item_id: int, prefix: str) -> int:
    """Redis's clock (TIME) on the server holding the item: the clock its scripts read."""
    if isinstance(redis, RedisCluster):
        node = redis.get_node_from_key(ItemKeys(prefix, item_id).sale)
        seconds, micros = await redis.execute_command("TIME", target_nodes=node)
    else:
        seconds, micros = await redis.time()
    return clock_ms(seconds, micros)


async def adjust_sale(
    *,
    redis: RedisClient,
    scripts: Scripts,
    prefix: str,
    change: SaleAdjustment,
    within_seconds: float | None = None,
) -> Adjusted:
    """Apply `change`. With `within_seconds`, Redis applies it only that long after it
    was asked (on its own clock), or answers TOO_LATE having changed nothing: a caller
    that gives up sooner than that (its socket timeout) can tell its operator that
    nothing changed, even if Redis runs the call long after (a stall)."""
    apply_by_ms = 0
    if within_seconds is not None:
        now = await item_clock_ms(redis, change.item_id, prefix)
        apply_by_ms = now + max(1, int(within_seconds * 1000))
    call = adjust_script_call(prefix=prefix, change=change, apply_by_ms=apply_by_ms)
    return await run_adjust(redis, scripts, call)


def parse_adjust_reply(reply: list[int]) -> Adjusted:
    code, remaining, added = reply
    return Adjusted(AdjustOutcome(int(code)), int(remaining), int(added))


async def run_adjust(redis: RedisClient, scripts: Scripts, call: ScriptCall) -> Adjusted:
    """One change as `call` (from adjust_script_call) says; adjust_sale builds it."""
    script_keys, script_args = call
    reply = await scripts.adjust_sale(keys=script_keys, args=script_args, client=redis)
    return parse_adjust_reply(reply)


@dataclass(frozen=True, slots=True)
class AppliedTerms:
    """What an item's sale hash holds of the versioned terms and the allocation."""

    version: int  # -1: written before terms were versioned
    allocated: int | None  # None: loaded before allocations were remembered


async def applied_terms(
    *, redis: RedisClient, prefix: str, item_ids: Sequence[int]
) -> dict[int, AppliedTerms | None]:
    """One pipeline for all items; None for an item whose sale is not in Redis."""
    if not item_ids:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for item_id in item_ids:
            pipe.hmget(ItemKeys(prefix, item_id).sale, ["stock", "terms_version", "allocated"])
        replies = await pipe.execute()
    applied: dict[int, AppliedTerms | None] = {}
    for item_id, (stock, version, allocated) in zip(item_ids, replies, strict=True):
        applied[item_id] = (
            None
            if stock is None
            else AppliedTerms(
                version=int(version) if version is not None else -1,
                allocated=int(allocated) if allocated is not None else None,
            )
        )
    return applied
