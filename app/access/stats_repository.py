"""The SQL of a fair-access sale's numbers (app/access/stats.py)."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.draw_models import Outcome

_QUEUE = text(
    """
    SELECT count(*) AS joined, count(admitted_at) AS admitted
    FROM queue_places WHERE event_id = :event_id
    """
)

_DRAW = text(
    """
    SELECT count(*) AS registrants, count(*) FILTER (WHERE outcome = :won) AS winners
    FROM draw_registrations WHERE event_id = :event_id
    """
)

# Every order of a gated sale was let in by a pass: the buyers are the passes used.
_BUYERS = text("SELECT count(DISTINCT user_id) FROM orders WHERE event_id = :event_id")


async def queue_counts(session: AsyncSession, event_id: int) -> tuple[int, int]:
    row = (await session.execute(_QUEUE, {"event_id": event_id})).one()
    return int(row.joined), int(row.admitted)


async def draw_counts(session: AsyncSession, event_id: int) -> tuple[int, int]:
    row = (await session.execute(_DRAW, {"event_id": event_id, "won": Outcome.WON})).one()
    return int(row.registrants), int(row.winners)


async def buyers(session: AsyncSession, event_id: int) -> int:
    return int(await session.scalar(_BUYERS, {"event_id": event_id}) or 0)
