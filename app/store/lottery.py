"""lottery_draw.lua's typed wrapper: its KEYS/ARGV, its reply and its outcome enum."""

import secrets
from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum

from redis.asyncio import Redis

from app.moments import to_ms
from app.redis import RedisClient
from app.store.batches import ScriptBatches
from app.store.generations import UNSEEN, Generation
from app.store.lottery_keys import LotteryKeys
from app.store.scripts import ScriptCall, Scripts

# The random number a draw is decided with: below 2^53, so Lua's doubles hold it exactly.
RANDOM_BITS = 53


class DrawOutcome(IntEnum):
    """lottery_draw.lua's return codes (see the script's header)."""

    WON = 0
    NO_WIN = 1
    NO_SUCH_LOTTERY = 2
    NOT_STARTED = 3
    ENDED = 4
    LIMIT_EXCEEDED = 5
    RECOVERING = 6  # frozen: Redis lost or rolled back the lottery's counters


@dataclass(frozen=True, slots=True)
class DrawReply:
    outcome: DrawOutcome
    prize_id: int | None
    # WON / NO_WIN: the counters' generation and this draw's place in it
    generation: Generation = UNSEEN


def random_pick() -> int:
    """A draw's random number, from the operating system's CSPRNG."""
    return secrets.randbits(RANDOM_BITS)


def draw_script_call(
    *,
    keys: LotteryKeys,
    user_id: str,
    draw_id: str,
    day: date,
    day_expires_at: datetime,
    pick: int,
    seen: Generation = UNSEEN,
) -> ScriptCall:
    """lottery_draw.lua's KEYS and ARGV (`pick`: random_pick(); `seen`: the newest
    generation of the lottery's counters this process saw drawn)."""
    return (
        [
            keys.lottery,
            keys.stock,
            keys.drawn(day),
            keys.checked_in(day),
            keys.draws,
            keys.queued,
        ],
        [
            user_id,
            draw_id,
            day.isoformat(),
            pick,
            seen.epoch,
            seen.seq,
            to_ms(day_expires_at),
            keys.lottery_id,
        ],
    )


def parse_draw_reply(reply: list[object]) -> DrawReply:
    code, prize_id, epoch, seq = (int(str(value)) for value in reply[:4])
    outcome = DrawOutcome(code)
    return DrawReply(
        outcome=outcome,
        prize_id=prize_id if outcome is DrawOutcome.WON else None,
        generation=Generation(epoch, seq) if outcome <= DrawOutcome.NO_WIN else UNSEEN,
    )


async def run_draw(
    redis: RedisClient,
    scripts: Scripts,
    call: ScriptCall,
    batches: ScriptBatches[DrawReply] | None = None,
) -> DrawReply:
    """One draw decided in Redis (`call` from draw_script_call), with the loop turn's
    other draws when `batches` are given (a single Redis)."""
    if batches is not None:
        return await batches.run(call)
    script_keys, script_args = call
    reply = await scripts.lottery_draw(keys=script_keys, args=script_args, client=redis)
    return parse_draw_reply(reply)


def draw_batches(redis: Redis, scripts: Scripts, *, max_calls: int) -> ScriptBatches[DrawReply]:
    """The draws of a loop turn, sent in one round trip (app/store/batches.py)."""
    return ScriptBatches(redis, scripts.lottery_draw, parse_draw_reply, max_calls=max_calls)


async def read_stock(redis: RedisClient, keys: LotteryKeys) -> tuple[dict[int, int], bool]:
    """Each prize's units left in Redis (empty: not loaded) and whether it is frozen."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.stock)
        pipe.hget(keys.lottery, "frozen")
        left, frozen = await pipe.execute()
    return {int(k): int(v) for k, v in left.items()}, frozen in ("1", b"1")
