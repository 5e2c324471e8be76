"""queue.lua's typed wrapper: its KEYS/ARGV, its reply and its outcome enum; and the
plain writes on a queue's hash (closing it, a new proof-of-work difficulty, restoring an
admission Postgres remembers)."""

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
    NOT_OPEN = 8  # a join while the event is hidden or its queue not open yet
    RECOVERING = 9
    CHALLENGE = 10  # a join without the proof of work the queue asks for


@dataclass(frozen=True, slots=True)
class QueueReply:
    outcome: QueueOutcome
    rank: int | None  # places ahead; None before the start (and when not waiting)
    admitted_count: int  # places admitted so far (the rate times the time since the start)
    admitted_ms: int | None  # the first admission (Redis's clock)
    generation: Generation = UNSEEN
    # The queue's terms as Redis holds them (0, 0, (), 0 when there is no queue or it is
    # frozen).
    pass_ms: int = 0
    admit_per_second: int = 0
    item_ids: tuple[int, ...] = ()
    pow_bits: int = 0
    # ADMITTED_NOW: the place's score, and its join time while it waits for the writer.
    score: int | None = None
    joined_ms: int | None = None


def queue_script_call(
    *,
    keys: QueueKeys,
    user_id: str,
    score: int | None = None,
    seen: Generation = UNSEEN,
    pow_zero_bits: int = -1,
    restore: bool = False,
) -> ScriptCall:
    """queue.lua's KEYS and ARGV: join with `score`, a secret random score below 2^52
    (used if the start has not come by Redis's clock; None: only look at the state);
    `pow_zero_bits`: the leading zero bits of the join's proof of work (-1: none sent);
    `restore`: `score` is the one Postgres stored for a place Redis lost, put back."""
    return (
        [keys.queue, keys.places, keys.admitted, keys.joins, keys.queued],
        [
            user_id,
            "" if score is None else score,
            seen.epoch,
            seen.seq,
            pow_zero_bits,
            keys.event_id,
            "1" if restore else "0",
        ],
    )


def parse_queue_reply(reply: list[Any]) -> QueueReply:
    # Integers as Redis sends them (int, or bytes/str digits: int() takes each).
    code, rank, count, admitted_ms, epoch, seq, pass_ms, rate = map(int, reply[:8])
    outcome = QueueOutcome(code)
    score, joined_ms = reply[10], reply[11]
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
        pow_bits=int(reply[9]),
        score=int(score) if score else None,
        joined_ms=int(joined_ms) if joined_ms else None,
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


async def set_pow_bits(redis: RedisClient, keys: QueueKeys, bits: int) -> None:
    """The operator changed the proof of work a join needs: in force from the next join
    (a queue Redis does not hold takes it when loaded)."""
    if await redis.exists(keys.queue):
        await redis.hset(keys.queue, "pow_bits", bits)


async def restore_admission(
    redis: RedisClient, keys: QueueKeys, *, user_id: str, admitted_ms: int
) -> None:
    """Postgres remembers an earlier admission than Redis just recorded (Redis lost it):
    Redis takes Postgres's, so the pass window never moves."""
    await redis.hset(keys.admitted, user_id, admitted_ms)
