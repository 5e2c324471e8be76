"""promotion.lua's typed wrapper: its KEYS/ARGV, its reply and its outcome enum."""

from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum

from app.moments import to_ms
from app.redis import RedisClient
from app.store.generations import UNSEEN, Generation
from app.store.promotion_keys import PromotionKeys
from app.store.scripts import ScriptCall, Scripts


class PromotionOutcome(IntEnum):
    """promotion.lua's return codes (see the script's header)."""

    TAKEN = 0
    REPLAYED = 1
    NO_SUCH_PROMOTION = 2
    NOT_STARTED = 3
    ENDED = 4
    HELD = 5  # its campaign is not approved
    LIMIT_EXCEEDED = 6
    EXHAUSTED = 7
    RECOVERING = 9  # frozen: Redis lost or rolled back the promotion's counters


@dataclass(frozen=True, slots=True)
class PromotionReply:
    outcome: PromotionOutcome
    taken: int  # places taken on the day
    generation: Generation = UNSEEN  # the counters' generation and, once taken, its seq


def promotion_script_call(
    *,
    keys: PromotionKeys,
    day: date,
    expires_at: datetime,
    user_id: str,
    order_id: str,
    seen: Generation = UNSEEN,
    take: bool = True,
) -> ScriptCall:
    """promotion.lua's KEYS and ARGV: a place on `day` for `order_id` (`take` False:
    only whether it would be given, for a quote)."""
    day_keys = keys.day(day)
    return (
        [keys.promotion, *day_keys.all()],
        [user_id, order_id, to_ms(expires_at), seen.epoch, seen.seq, "1" if take else "0"],
    )


def parse_promotion_reply(reply: list[object]) -> PromotionReply:
    code, taken, epoch, seq = (int(str(value)) for value in reply[:4])
    return PromotionReply(
        outcome=PromotionOutcome(code), taken=taken, generation=Generation(epoch, seq)
    )


async def run_promotion(redis: RedisClient, scripts: Scripts, call: ScriptCall) -> PromotionReply:
    """One place decided in Redis (`call` from promotion_script_call)."""
    script_keys, script_args = call
    reply = await scripts.promotion(keys=script_keys, args=script_args, client=redis)
    return parse_promotion_reply(reply)
