"""Every SQL statement on waiting-room places (queue_places)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.queue_models import QueuePlace
from app.campaigns.models import Campaign
from app.db import Connectable
from app.events.models import Event, EventItem


@dataclass(frozen=True, slots=True)
class StoredPlace:
    id: int
    score: int
    admitted_at: datetime | None
    inserted: bool = False  # by this call


@dataclass(frozen=True, slots=True)
class QueueEventRow:
    id: int
    starts_at: datetime
    ends_at: datetime
    access: dict[str, Any]
    campaign_status: str | None  # None: the event is no campaign's
    item_ids: list[int]


# Built once: building the statement cost more than running it.
_QUEUE_EVENT = (
    select(
        Event.id,
        Event.starts_at,
        Event.ends_at,
        Event.access,
        Campaign.status,
        select(func.array_agg(aggregate_order_by(EventItem.id, EventItem.id)))
        .where(EventItem.event_id == Event.id)
        .scalar_subquery(),
    )
    .outerjoin(Campaign, Campaign.id == Event.campaign_id)
    .where(Event.id == bindparam("event_id"))
)


async def queue_event(db: Connectable, *, event_id: int) -> QueueEventRow | None:
    """The event's window, access, campaign state and item ids, in one round trip."""
    row = (await db.execute(_QUEUE_EVENT, {"event_id": event_id})).one_or_none()
    if row is None:
        return None
    return QueueEventRow(
        id=row[0],
        starts_at=row[1],
        ends_at=row[2],
        access=row[3],
        campaign_status=row[4],
        item_ids=list(row[5] or ()),  # array_agg of no rows is NULL
    )


# One statement, so it needs no transaction of its own: a place after the start (no score
# given) follows in arrival order, its score ARRIVALS + its id, drawn here in the order given.
_JOIN_MANY = text(
    """
    INSERT INTO queue_places (id, event_id, user_id, score)
    SELECT joiner.id, :event_id, joiner.user_id, COALESCE(joiner.score, :arrivals + joiner.id)
    FROM (
        SELECT given.user_id, given.score,
               nextval(pg_get_serial_sequence('queue_places', 'id')) AS id
        FROM (
            SELECT * FROM unnest(CAST(:user_ids AS text[]), CAST(:scores AS bigint[]))
            WITH ORDINALITY AS given(user_id, score, arrival)
            ORDER BY arrival
        ) AS given
    ) AS joiner
    ON CONFLICT (event_id, user_id) DO NOTHING
    RETURNING id, user_id, score
    """
)
_ARRIVAL_SCORES = text(
    "UPDATE queue_places SET score = :arrivals + id WHERE id = ANY(:ids) RETURNING id, score"
)
_PLACES_OF = text(
    """
    SELECT id, user_id, score, admitted_at FROM queue_places
    WHERE event_id = :event_id AND user_id = ANY(CAST(:user_ids AS text[]))
    """
)


async def join_many(
    db: Connectable,
    *,
    event_id: int,
    scores: dict[str, int | None],
    arrivals: int,
) -> dict[str, StoredPlace]:
    """Each user's place, inserted now with their score (None: an arrival after the start,
    scored by its arrival number, in the order of `scores`) unless they hold one already
    (then theirs, unchanged). Two joins of one user at once: the second waits for the
    first's commit, then reads it."""
    user_ids = list(scores)
    inserted = await db.execute(
        _JOIN_MANY,
        {
            "event_id": event_id,
            "user_ids": user_ids,
            "scores": list(scores.values()),
            "arrivals": arrivals,
        },
    )
    found = {
        user_id: StoredPlace(id=place_id, score=score, admitted_at=None, inserted=True)
        for place_id, user_id, score in inserted
    }
    if len(found) < len(user_ids):
        held = [u for u in user_ids if u not in found]
        # The conflicting rows are committed: ON CONFLICT saw them.
        rows = await db.execute(_PLACES_OF, {"event_id": event_id, "user_ids": held})
        for place_id, user_id, score, admitted_at in rows:
            found[user_id] = StoredPlace(id=place_id, score=score, admitted_at=admitted_at)
    return found


async def score_as_arrival(session: AsyncSession, *, place_id: int, arrivals: int) -> int:
    """The place follows in arrival order (scored after the start); its new score."""
    rescored = await session.execute(_ARRIVAL_SCORES, {"arrivals": arrivals, "ids": [place_id]})
    score: int = rescored.one().score
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
