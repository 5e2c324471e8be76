"""The bot challenge of queue and draw sales (proof of work, docs/CONTRACT.md "Fair access
for hyped sales"): each event's challenge, and the check a join or a registration makes.

A challenge is derived, not stored: HMAC(SECKILL_PASS_SECRET, "challenge:{event id}"), so
every API process gives the same one, nobody can guess another event's ahead of its page,
and checking an answer costs one hash, no lookup."""

import functools
import hashlib
import hmac

from app.access import pow
from app.access.passes import pass_secret
from app.auth import User
from app.config import Settings
from app.errors import ChallengeRequired
from app.events.access import OpenAccess
from app.events.models import Event
from app.events.service import access_of


def challenge_of(settings: Settings, event_id: int) -> str:
    """The event's proof-of-work challenge (hex), the same in every process."""
    return _challenge(pass_secret(settings), event_id)


@functools.lru_cache(maxsize=1024)
def _challenge(secret: bytes, event_id: int) -> str:
    # Every join of a crowd asks for one of a few events' challenges.
    return hmac.new(secret, f"challenge:{event_id}".encode("ascii"), hashlib.sha256).hexdigest()


def proof_bits(*, settings: Settings, event_id: int, user: User, nonce: str | None) -> int:
    """The leading zero bits of `nonce` as an answer to the event's challenge for this
    user (-1: none sent): checked against the difficulty where the join is decided."""
    if nonce is None:
        return -1
    challenge = challenge_of(settings, event_id)
    return pow.zero_bits(challenge=challenge, user_id=user.id, nonce=nonce)


def challenge_required(*, event_id: int, bits: int, nonce: str | None) -> ChallengeRequired:
    """The refusal (403 challenge_required) of a join or registration without an answer
    with `bits` zero bits."""
    return ChallengeRequired(
        f"This sale asks for a proof of work: GET /api/v1/events/{event_id}/challenge, "
        f"then send X-Seckill-Pow: a nonce with SHA-256 of "
        f'"{{challenge}}:{{your user id}}:{{nonce}}" starting with {bits} zero bits.'
        if nonce is None
        else f"X-Seckill-Pow does not solve this sale's challenge at {bits} bits."
    )


def pow_bits_of(event: Event) -> int:
    """The difficulty the event asks for now (0: none; an open event never asks)."""
    access = access_of(event)
    return 0 if isinstance(access, OpenAccess) else access.pow_bits


async def require_pow(*, event: Event, user: User, nonce: str | None, settings: Settings) -> None:
    """require_solution at the difficulty `event` asks for now."""
    await require_solution(
        event_id=event.id, bits=pow_bits_of(event), user=user, nonce=nonce, settings=settings
    )


async def require_solution(
    *, event_id: int, bits: int, user: User, nonce: str | None, settings: Settings
) -> None:
    """Refuse (403 challenge_required) a join or a registration whose X-Seckill-Pow
    `nonce` does not solve the event's challenge for this user at `bits`; a no-op at 0."""
    if bits == 0:
        return
    challenge = challenge_of(settings, event_id)
    if not pow.solves(challenge=challenge, user_id=user.id, nonce=nonce, bits=bits):
        raise challenge_required(event_id=event_id, bits=bits, nonce=nonce)
