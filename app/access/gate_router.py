"""The public side of the bot challenge: GET /api/v1/events/{event_id}/challenge."""

from typing import Annotated

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field

from app.access.gate import challenge_of, pow_bits_of
from app.access.pow import MAX_NONCE_LENGTH
from app.container import ContainerDep
from app.db import SessionDep
from app.errors import problem_responses
from app.events import service as events
from app.events.access import MAX_BITS
from app.events.errors import EventNotFound
from app.ids import EventId

public = APIRouter(prefix="/api/v1", tags=["fair access"])

# The answer a join or a registration sends; a longer one is refused unread (422).
PowNonce = Annotated[str | None, Header(alias="X-Seckill-Pow", max_length=MAX_NONCE_LENGTH)]


class Challenge(BaseModel):
    challenge: str = Field(description="Hex; the same for every caller of this event.")
    bits: int = Field(
        ge=0,
        le=MAX_BITS,
        description='SHA-256 of "{challenge}:{user id}:{nonce}" must start with this many '
        "zero bits (0: no proof of work asked).",
    )


@public.get("/events/{event_id}/challenge", responses=problem_responses(EventNotFound))
async def get_challenge(
    event_id: EventId, session: SessionDep, services: ContainerDep
) -> Challenge:
    """The event's proof-of-work challenge and its difficulty now: joining its queue or
    registering for its draw sends `X-Seckill-Pow: <nonce>` solving it. An operator may
    change `bits` mid-sale; the challenge stays."""
    event = await events.get_event_row(session=session, event_id=event_id)
    if not events.shown_to_shoppers(event):
        raise EventNotFound(f"No event {event_id}.")
    return Challenge(challenge=challenge_of(services.settings, event.id), bits=pow_bits_of(event))
