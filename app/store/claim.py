"""claim.lua's typed wrapper: its KEYS/ARGV, its reply and its outcome enum."""

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from app.moments import from_ms
from app.redis import RedisClient
from app.store.coupon_keys import CouponKeys
from app.store.generations import UNSEEN, Generation
from app.store.scripts import ScriptCall, Scripts


class ClaimOutcome(IntEnum):
    """claim.lua's return codes (see the script's header)."""

    CLAIMED = 0
    REPLAYED = 1
    NO_SUCH_COUPON = 2
    NOT_STARTED = 3
    ENDED = 4
    AUDIENCE_MISMATCH = 5
    LIMIT_EXCEEDED = 6
    EXHAUSTED = 7
    ASK_WHO = 8  # a new-users coupon: look the user up, call again
    RECOVERING = 9  # frozen: Redis lost or rolled back the coupon's counters


@dataclass(frozen=True, slots=True)
class ClaimReply:
    outcome: ClaimOutcome
    remaining: int
    claim_id: str
    valid_until_ms: int | None
    # CLAIMED: the counters' generation and this claim's place in it
    generation: Generation = UNSEEN

    @property
    def valid_until(self) -> datetime | None:
        return None if self.valid_until_ms is None else from_ms(self.valid_until_ms)


def claim_script_call(
    *,
    keys: CouponKeys,
    user_id: str,
    member: bool,
    new_user: bool | None,
    claim_id: str,
    idempotency_key: str | None,
    idempotency_ttl_seconds: int,
    seen: Generation = UNSEEN,
) -> ScriptCall:
    """claim.lua's KEYS and ARGV. `new_user` None: not looked up (see outcome 8); `seen`:
    the newest generation of the coupon's counters this process saw claimed."""
    # Without an Idempotency-Key the script never reads KEYS[3]; any key of the coupon's
    # slot stands in, so the call stays single-slot on a cluster.
    idempotency = keys.idempotency(user_id, idempotency_key) if idempotency_key else keys.coupon
    return (
        [keys.coupon, keys.claimers, idempotency, keys.claims, keys.queued],
        [
            user_id,
            "1" if member else "0",
            "" if new_user is None else ("1" if new_user else "0"),
            claim_id,
            idempotency_key or "",
            idempotency_ttl_seconds,
            keys.coupon_id,
            seen.epoch,
            seen.seq,
        ],
    )


def parse_claim_reply(reply: list[object]) -> ClaimReply:
    code, remaining, claim_id, valid_until_ms = reply[:4]
    return ClaimReply(
        outcome=ClaimOutcome(int(str(code))),
        remaining=int(str(remaining)),
        claim_id=str(claim_id),
        valid_until_ms=int(str(valid_until_ms)) if str(valid_until_ms) else None,
        generation=(
            Generation(int(str(reply[4])), int(str(reply[5]))) if len(reply) > 4 else UNSEEN
        ),
    )


async def run_claim(redis: RedisClient, scripts: Scripts, call: ScriptCall) -> ClaimReply:
    """One claim decided in Redis (`call` from claim_script_call)."""
    script_keys, script_args = call
    reply = await scripts.claim(keys=script_keys, args=script_args, client=redis)
    return parse_claim_reply(reply)
