"""Every SQL statement on waiting-room places (queue_places)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.queue_models import QueuePlace
from app.events.models import Event


@dataclass(frozen=True, slots=True)
class StoredPlace:
    id: int
    score: int
    admitted_at: datetime | None
    inserted: bool = False  # by this call


_JOIN = text(
    """
    INSERT INTO queue_places (event_id, user_id, score)
    VALUES (:event_id, :user_id, :score)
    ON CONFLICT (event_id, user_id) DO NOTHING
    RETURNING id
    """
)
# A place after the start follows in arrival order: its score is ARRIVALS + its id.
_ARRIVAL_SCORE = text(
    "UPDATE queue_places SET score = :arrivals + id WHERE id = :id RETURNING score"
)


async def join(
    session: AsyncSession, *, event_id: int, user_id: str, score: int | None, arrivals: int
) -> StoredPlace:
    """The user's place, inserted now with `score` (None: an arrival after the start,
    scored by its arrival number) unless they hold one already (then theirs, unchanged).
    Two joins of one user at once: the second waits for the first's commit, then reads it."""
    new_id = (
        await session.execute(
            _JOIN,
            {"event_id": event_id, "user_id": user_id, "score": score if score is not None else 0},
        )
    ).scalar_one_or_none()
    if new_id is None:
        found = await place_of(session, event_id=event_id, user_id=user_id)
        assert found is not None  # the conflicting row is committed: ON CONFLICT saw it
        return found
    if score is None:
        score = await score_as_arrival(session, place_id=new_id, arrivals=arrivals)
    return StoredPlace(id=new_id, score=score, admitted_at=None, inserted=True)


async def score_as_arrival(session: AsyncSession, *, place_id: int, arrivals: int) -> int:
    """The place follows in arrival order (scored after the start); its new score."""
    score: int = (
        await session.execute(_ARRIVAL_SCORE, {"arrivals": arrivals, "id": place_id})
    ).scalar_one()
    return score


async def place_of(session: AsyncSession, *, event_id: int, user_id: str) -> StoredPlace | None:
    row = (
        await session.execute(
            select(QueuePlace.id, QueuePlace.score, QueuePlace.admitted_at).where(
                QueuePlace.event_id == event_id, QueuePlace.user_id == user_id
            )
        )
    ).one_or_none()
    return (
        None
        if row is None
        else StoredPlace(id=row.id, score=row.score, admitted_at=row.admitted_at)
    )


_ADMIT = text(
    """
    UPDATE queue_places SET admitted_at = COALESCE(admitted_at, :admitted_at)
    WHERE event_id = :event_id AND user_id = :user_id
    RETURNING admitted_at
    """
)


async def record_admission(
    session: AsyncSession, *, event_id: int, user_id: str, admitted_at: datetime
) -> datetime | None:
    """The place's first admission: `admitted_at` unless one is stored already (then that
    one); None if Postgres has no such place."""
    result = await session.execute(
        _ADMIT, {"event_id": event_id, "user_id": user_id, "admitted_at": admitted_at}
    )
    found: datetime | None = result.scalar_one_or_none()
    return found


async def places(session: AsyncSession, *, event_id: int) -> list[tuple[str, int, datetime | None]]:
    """Every place of the queue: (user id, score, admitted at)."""
    rows = await session.execute(
        select(QueuePlace.user_id, QueuePlace.score, QueuePlace.admitted_at)
        .where(QueuePlace.event_id == event_id)
        .order_by(QueuePlace.score)
    )
    return [(row.user_id, row.score, row.admitted_at) for row in rows]


async def queue_events_not_ended(session: AsyncSession, *, now: datetime) -> Sequence[Event]:
    rows = await session.scalars(
        select(Event)
        .where(Event.access["mode"].astext == "queue", Event.ends_at > now)
        .order_by(Event.id)
    )
    return rows.unique().all()
