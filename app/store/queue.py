"""queue.lua's typed wrapper: its KEYS/ARGV, its reply and its outcome enum; and the two
plain writes on a queue's hash (closing it, restoring an admission Postgres remembers)."""

import functools
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from redis.asyncio import Redis

from app.redis import RedisClient
from app.store.batches import ScriptBatches
from app.store.generations import UNSEEN, Generation
from app.store.queue_keys import QueueKeys
from app.store.scripts import ScriptCall, Scripts

# Scores of places joined before the start are below this (a random 52-bit number); those
# of later arrivals are ARRIVALS + their arrival number, so they follow in arrival order.
# Both stay below 2^53: a sorted set's scores are doubles, exact up to there.
ARRIVALS = 2**52
RANDOM_BITS = 52


class QueueOutcome(IntEnum):
    """queue.lua's return codes (see the script's header)."""

    WAITING = 0
    ADMITTED = 1
    ADMITTED_NOW = 2
    CLOSED = 3  # every item sold out
    ENDED = 4
    NOT_IN_QUEUE = 5
    NO_SUCH_QUEUE = 6
    TOO_LATE_TO_DRAW = 7  # a random score reached Redis after the start
    RECOVERING = 9


@dataclass(frozen=True, slots=True)
class QueueReply:
    outcome: QueueOutcome
    rank: int | None  # places ahead; None before the start (and when not waiting)
    admitted_count: int  # places admitted so far (the rate times the time since the start)
    admitted_ms: int | None  # the first admission (Redis's clock)
    generation: Generation = UNSEEN
    # The queue's terms as Redis holds them (0, 0, () when there is no queue or it is frozen).
    pass_ms: int = 0
    admit_per_second: int = 0
    item_ids: tuple[int, ...] = ()


def queue_script_call(
    *,
    keys: QueueKeys,
    user_id: str,
    score: int | None = None,
    seen: Generation = UNSEEN,
    drawn: bool = False,
) -> ScriptCall:
    """queue.lua's KEYS and ARGV: join with `score` (None: only look at the state);
    `drawn`: a random score just drawn for a new place before the start (by the API's
    clock), refused if Redis's clock has passed the start."""
    return (
        [keys.queue, keys.places, keys.admitted],
        [user_id, "" if score is None else score, seen.epoch, seen.seq, "1" if drawn else "0"],
    )


def parse_queue_reply(reply: list[Any]) -> QueueReply:
    # Integers as Redis sends them (int, or bytes/str digits: int() takes each).
    code, rank, count, admitted_ms, epoch, seq, pass_ms, rate = map(int, reply[:8])
    outcome = QueueOutcome(code)
    return QueueReply(
        outcome=outcome,
        rank=rank if rank >= 0 else None,
        admitted_count=count,
        admitted_ms=admitted_ms
        if outcome in (QueueOutcome.ADMITTED, QueueOutcome.ADMITTED_NOW)
        else None,
        generation=Generation(epoch, seq),
        pass_ms=pass_ms,
        admit_per_second=rate,
        item_ids=_item_ids(reply[8]),
    )


@functools.lru_cache(maxsize=1024)
def _item_ids(items: str) -> tuple[int, ...]:
    """The queue hash's `items` (every poll of an event sends the same few)."""
    return tuple(map(int, items.split(","))) if items else ()


async def run_queue(
    redis: RedisClient,
    scripts: Scripts,
    call: ScriptCall,
    batches: ScriptBatches[QueueReply] | None = None,
) -> QueueReply:
    """One join or look decided in Redis (`call` from queue_script_call), with the loop
    turn's other calls when `batches` are given (a single Redis)."""
    if batches is not None:
        return await batches.run(call)
    script_keys, script_args = call
    return parse_queue_reply(await scripts.queue(keys=script_keys, args=script_args, client=redis))


def queue_batches(redis: Redis, scripts: Scripts, *, max_calls: int) -> ScriptBatches[QueueReply]:
    """The joins and polls of a loop turn, sent in one round trip (app/store/batches.py)."""
    return ScriptBatches(redis, scripts.queue, parse_queue_reply, max_calls=max_calls)


async def close_queue(redis: RedisClient, keys: QueueKeys) -> None:
    """Every item sold out: nobody still waiting is admitted from now on."""
    await redis.hset(keys.queue, "closed", "1")


async def restore_admission(
    redis: RedisClient, keys: QueueKeys, *, user_id: str, admitted_ms: int
) -> None:
    """Postgres remembers an earlier admission than Redis just recorded (Redis lost it):
    Redis takes Postgres's, so the pass window never moves."""
    await redis.hset(keys.admitted, user_id, admitted_ms)
