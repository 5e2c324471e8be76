"""Joins of a waiting room stored together: the joins of one event that arrive while the
previous group of them is being written share one transaction (a group commit).

Everyone joins in the last seconds before a hyped sale's start, and each join must be in
Postgres before it is answered (a place answered is never lost). One transaction each, the
connection checkout, the event's read, the insert and the commit cost several times the
join's Redis work, and Postgres commits them one by one. Grouped, a crowd's joins share
them: the first join of a quiet moment is written at once, alone; while it is written the
next ones gather, and go together as soon as it is done. At most one group per event is
being written at a time, and none holds more than `queue_join_group_max` joins.
"""

import asyncio
import secrets
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.access import queue_repository as repository
from app.access.gate import require_solution
from app.access.queue_errors import NotAQueue
from app.access.queue_repository import StoredPlace
from app.auth import User
from app.config import Settings
from app.db import commit
from app.errors import NotStarted
from app.events import service as events
from app.events.access import ACCESS, QueueAccess
from app.events.errors import EventNotFound
from app.events.models import Event
from app.moments import utc_now
from app.store.queue import ARRIVALS, RANDOM_BITS


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """What the waiting room needs of its event, read in one light query (an event with
    its items as ORM objects costs several times a join's own work)."""

    id: int
    starts_at: datetime
    ends_at: datetime
    access: QueueAccess
    item_ids: tuple[int, ...]

    @classmethod
    def of(cls, event: Event, access: QueueAccess) -> "QueueEvent":
        return cls(
            id=event.id,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            access=access,
            item_ids=tuple(item.id for item in event.items),
        )


async def queue_event(*, session: AsyncSession, event_id: int) -> QueueEvent:
    """The event, if shoppers see it and it has a waiting room (else 404, 409)."""
    row = await repository.queue_event(session, event_id=event_id)
    if row is None or not events.campaign_shows(row.campaign_status):
        raise EventNotFound(f"No event {event_id}.")
    access = ACCESS.validate_python(row.access)
    if not isinstance(access, QueueAccess):
        raise NotAQueue(f"Event {event_id} has no waiting room (access mode {access.mode!r}).")
    return QueueEvent(
        id=row.id,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        access=access,
        item_ids=tuple(row.item_ids),
    )


@dataclass(frozen=True, slots=True)
class Joiner:
    user: User
    pow_nonce: str | None


@dataclass(frozen=True, slots=True)
class Joined:
    event: QueueEvent
    place: StoredPlace | None  # None: the sale has ended (nothing stored)


async def store_joins(
    session: AsyncSession, settings: Settings, event_id: int, joiners: Sequence[Joiner]
) -> list[Joined | Exception]:
    """Each joiner's place (or the refusal of their join alone, e.g. a wrong proof of
    work); a refusal of them all (no such event, not open yet) is raised."""
    event = await queue_event(session=session, event_id=event_id)
    now = utc_now()
    if now < event.access.opens_at:
        raise NotStarted(f"The queue opens at {event.access.opens_at.isoformat()}.")
    if now >= event.ends_at:
        return [Joined(event, None) for _ in joiners]  # a place now would never be admitted
    decided: list[Joined | Exception] = []
    scores: dict[str, int | None] = {}
    for joiner in joiners:
        try:
            await require_solution(
                event_id=event_id,
                bits=event.access.pow_bits,
                user=joiner.user,
                nonce=joiner.pow_nonce,
                settings=settings,
            )
        except Exception as refusal:
            decided.append(refusal)
            continue
        decided.append(Joined(event, None))
        # Drawn here, kept secret: the order at the start is uniformly random.
        scores.setdefault(
            joiner.user.id, secrets.randbits(RANDOM_BITS) if now < event.starts_at else None
        )
    places = (
        await repository.join_many(session, event_id=event_id, scores=scores, arrivals=ARRIVALS)
        if scores
        else {}
    )
    return [
        d if isinstance(d, Exception) else Joined(event, places[joiner.user.id])
        for d, joiner in zip(decided, joiners, strict=True)
    ]


_Waiting = list[tuple[Joiner, "asyncio.Future[Joined]"]]


class JoinGroups:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._waiting: dict[int, _Waiting] = {}
        self._writing: set[int] = set()  # events with a group being written
        self._tasks: set[asyncio.Task[None]] = set()

    async def join(self, event_id: int, joiner: Joiner) -> Joined:
        """The joiner's place, stored (committed) with the others of its group."""
        loop = asyncio.get_running_loop()
        joined: asyncio.Future[Joined] = loop.create_future()
        waiting = self._waiting.setdefault(event_id, [])
        if not waiting and event_id not in self._writing:
            # The others of this turn of the event loop go with it.
            self._writing.add(event_id)
            loop.call_soon(self._write_next, event_id)
        waiting.append((joiner, joined))
        return await joined

    def _write_next(self, event_id: int) -> None:
        waiting = self._waiting.pop(event_id, [])
        if not waiting:
            self._writing.discard(event_id)
            return
        limit = self._settings.queue_join_group_max
        group, rest = waiting[:limit], waiting[limit:]
        if rest:
            self._waiting[event_id] = rest
        task = asyncio.create_task(self._write(event_id, group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _task: self._write_next(event_id))

    async def _write(self, event_id: int, group: _Waiting) -> None:
        try:
            async with self._sessionmaker() as session:
                decided = await store_joins(
                    session, self._settings, event_id, [joiner for joiner, _ in group]
                )
                await commit(session)
        except Exception as exc:
            for _, joined in group:
                if not joined.done():
                    joined.set_exception(exc)
            return
        for (_, joined), outcome in zip(group, decided, strict=True):
            if joined.done():  # its request was cancelled; the place stays stored
                continue
            if isinstance(outcome, Exception):
                joined.set_exception(outcome)
            else:
                joined.set_result(outcome)


# One per process and database (tests run several apps in one process).
_groups: "weakref.WeakKeyDictionary[async_sessionmaker[AsyncSession], JoinGroups]" = (
    weakref.WeakKeyDictionary()
)


def join_groups(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> JoinGroups:
    groups = _groups.get(sessionmaker)
    if groups is None:
        groups = _groups[sessionmaker] = JoinGroups(sessionmaker, settings)
    return groups
