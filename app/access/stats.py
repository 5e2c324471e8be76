"""A fair-access sale's numbers for the operators' live stats and the report: the waiting
room's places and admissions, the draw's registrants and winners, and the passes used
(buyers of a gated sale: each bought with a pass). None for an open sale."""

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import stats_repository as repository
from app.events.access import DrawAccess, QueueAccess
from app.events.models import Event
from app.events.service import access_of


class AccessStats(BaseModel):
    mode: str
    queue_joined: int | None = Field(default=None, description="Places taken in the queue.")
    queue_admitted: int | None = Field(default=None, description="Places admitted (a pass each).")
    queue_waiting: int | None = Field(default=None, description="Places not admitted yet.")
    draw_registrants: int | None = None
    draw_winners: int | None = Field(default=None, description="0 until the draw.")
    passes_used: int = Field(description="Distinct buyers: each bought with a pass.")


async def access_stats(*, session: AsyncSession, event: Event) -> AccessStats | None:
    access = access_of(event)
    if isinstance(access, QueueAccess):
        joined, admitted = await repository.queue_counts(session, event.id)
        return AccessStats(
            mode=access.mode,
            queue_joined=joined,
            queue_admitted=admitted,
            queue_waiting=joined - admitted,
            passes_used=await repository.buyers(session, event.id),
        )
    if isinstance(access, DrawAccess):
        registrants, winners = await repository.draw_counts(session, event.id)
        return AccessStats(
            mode=access.mode,
            draw_registrants=registrants,
            draw_winners=winners,
            passes_used=await repository.buyers(session, event.id),
        )
    return None
