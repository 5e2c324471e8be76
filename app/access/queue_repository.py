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
from app.store.records import NewPlace


@dataclass(frozen=True, slots=True)
class StoredPlace:
    id: int
    score: int
    admitted_at: datetime | None


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


_INSERT_PLACES = text(
    """
    INSERT INTO queue_places (event_id, user_id, score, joined_at)
    SELECT * FROM unnest(
        CAST(:event_ids AS bigint[]), CAST(:user_ids AS text[]), CAST(:scores AS bigint[]),
        CAST(:joined_ats AS timestamptz[])
    )
    ON CONFLICT (event_id, user_id) DO NOTHING
    RETURNING id
    """
)


async def insert_places(session: AsyncSession, places: Sequence[NewPlace]) -> int:
    """Store the places the joins streams carry (the order writer's); a place stored
    before (a stream entry delivered again, an admission that came first) is kept as it
    is. Returns how many were new."""
    if not places:
        return 0
    result = await session.scalars(
        _INSERT_PLACES,
        {
            "event_ids": [p.event_id for p in places],
            "user_ids": [p.id for p in places],
            "scores": [p.score for p in places],
            "joined_ats": [p.joined_at for p in places],
        },
    )
    return len(result.all())


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
    INSERT INTO queue_places (event_id, user_id, score, joined_at, admitted_at)
    VALUES (:event_id, :user_id, :score, :joined_at, :admitted_at)
    ON CONFLICT (event_id, user_id)
    DO UPDATE SET admitted_at = COALESCE(queue_places.admitted_at, EXCLUDED.admitted_at)
    RETURNING admitted_at
    """
)


async def record_admission(
    session: AsyncSession,
    *,
    event_id: int,
    user_id: str,
    admitted_at: datetime,
    score: int,
    joined_at: datetime,
) -> datetime:
    """The place's first admission: `admitted_at` unless one is stored already (then that
    one). A place the order writer has not stored yet is stored with it (`score`,
    `joined_at`: the join's), so no admission waits for the writer."""
    result = await session.execute(
        _ADMIT,
        {
            "event_id": event_id,
            "user_id": user_id,
            "admitted_at": admitted_at,
            "score": score,
            "joined_at": joined_at,
        },
    )
    found: datetime = result.scalar_one()
    return found


async def newest_joins(session: AsyncSession, event_ids: list[int]) -> dict[int, datetime]:
    """Each event's newest stored join (Redis's clock, as queue.lua stamped it)."""
    rows = await session.execute(
        select(QueuePlace.event_id, func.max(QueuePlace.joined_at))
        .where(QueuePlace.event_id.in_(event_ids))
        .group_by(QueuePlace.event_id)
    )
    return {int(event_id): joined_at for event_id, joined_at in rows.all()}


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
