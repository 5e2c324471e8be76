"""promotion_release.lua's typed wrapper: a cancelled order's place given back once."""

from dataclasses import dataclass
from datetime import date

from app.redis import RedisClient
from app.store.promotion_keys import PromotionKeys
from app.store.scripts import ScriptCall, Scripts


@dataclass(frozen=True, slots=True)
class PromotionReleaseReply:
    given_back: bool  # False: the order held no place (given back before, or never)
    taken: int  # places taken on the day after it


def promotion_release_script_call(*, keys: PromotionKeys, day: date, order_id: str) -> ScriptCall:
    return keys.day(day).all(), [order_id]


def parse_promotion_release_reply(reply: list[object]) -> PromotionReleaseReply:
    given_back, taken = (int(str(value)) for value in reply[:2])
    return PromotionReleaseReply(given_back=given_back == 1, taken=taken)


async def run_promotion_release(
    redis: RedisClient, scripts: Scripts, call: ScriptCall
) -> PromotionReleaseReply:
    script_keys, script_args = call
    reply = await scripts.promotion_release(keys=script_keys, args=script_args, client=redis)
    return parse_promotion_release_reply(reply)
