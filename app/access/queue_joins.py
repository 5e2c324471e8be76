"""Joins of a waiting room stored together: the joins of one event that arrive while the
previous group of them is being written share one transaction (a group commit).

Everyone joins in the last seconds before a hyped sale's start, and each join must be in
Postgres before it is answered (a place answered is never lost). One transaction each, the
connection checkout, the event's read, the insert and the commit cost several times the
join's Redis work, and Postgres commits them one by one. Grouped, a crowd's joins share
them: the first join of a quiet moment is written at once, alone; while it is written the
next ones gather, and go together as soon as it is done. At most one group per event is
being written at a time, and none holds more than `queue_join_group_max` joins.

The groups of a burst are written on one connection, held while joins keep coming (each
checkout pays the pool's liveness ping, three round trips), and each group's places are
one statement, committed on its own (no BEGIN and COMMIT round trips).
"""

import asyncio
import secrets
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.access import queue_repository as repository
from app.access.gate import require_solution
from app.access.queue_errors import NotAQueue
from app.access.queue_repository import StoredPlace
from app.auth import User
from app.config import Settings
from app.db import Connectable
from app.errors import AppError, NotStarted
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


async def queue_event(*, db: Connectable, event_id: int) -> QueueEvent:
    """The event, if shoppers see it and it has a waiting room (else 404, 409)."""
    row = await repository.queue_event(db, event_id=event_id)
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
    db: Connectable, settings: Settings, event_id: int, joiners: Sequence[Joiner]
) -> list[Joined | Exception]:
    """Each joiner's place (or the refusal of their join alone, e.g. a wrong proof of
    work); a refusal of them all (no such event, not open yet) is raised."""
    event = await queue_event(db=db, event_id=event_id)
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
        await repository.join_many(db, event_id=event_id, scores=scores, arrivals=ARRIVALS)
        if scores
        else {}
    )
    return [
        d if isinstance(d, Exception) else Joined(event, places[joiner.user.id])
        for d, joiner in zip(decided, joiners, strict=True)
    ]


_Waiting = list[tuple[Joiner, "asyncio.Future[Joined]"]]


class JoinGroups:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self._waiting: dict[int, _Waiting] = {}
        self._writing: set[int] = set()  # events with a writer (_write_groups)
        self._tasks: set[asyncio.Task[None]] = set()

    async def join(self, event_id: int, joiner: Joiner) -> Joined:
        """The joiner's place, stored (committed) with the others of its group."""
        joined: asyncio.Future[Joined] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(event_id, []).append((joiner, joined))
        if event_id not in self._writing:
            self._start_writer(event_id)  # from the next loop turn: this one's joins go too
        return await joined

    def _start_writer(self, event_id: int) -> None:
        self._writing.add(event_id)
        task = asyncio.create_task(self._write_groups(event_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _next_group(self, event_id: int) -> _Waiting:
        waiting = self._waiting.pop(event_id, [])
        limit = self._settings.queue_join_group_max
        group, rest = waiting[:limit], waiting[limit:]
        if rest:
            self._waiting[event_id] = rest
        return group

    async def _write_groups(self, event_id: int) -> None:
        """Write the event's joins, group after group, on one connection, until none are
        waiting. A group that fails fails alone; the next takes a fresh connection."""
        try:
            async with self._engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                while group := self._next_group(event_id):
                    if not await self._write(autocommit, event_id, group):
                        break
        except Exception as exc:  # no connection: the joins waiting for one fail alike
            _fail(self._next_group(event_id), exc)
        finally:
            self._writing.discard(event_id)
            if self._waiting.get(event_id):  # came while the connection was let go
                self._start_writer(event_id)

    async def _write(self, connection: AsyncConnection, event_id: int, group: _Waiting) -> bool:
        """Store the group's places and answer each joiner; False if the connection may be
        unusable now (the group failed on something other than a refusal)."""
        try:
            decided = await store_joins(
                connection, self._settings, event_id, [joiner for joiner, _ in group]
            )
        except AppError as refusal:  # refused as a whole (not open yet, no such event)
            _fail(group, refusal)
            return True
        except Exception as exc:
            _fail(group, exc)
            return False
        for (_, joined), outcome in zip(group, decided, strict=True):
            if joined.done():  # its request was cancelled; the place stays stored
                continue
            if isinstance(outcome, Exception):
                joined.set_exception(outcome)
            else:
                joined.set_result(outcome)
        return True


def _fail(group: _Waiting, exc: Exception) -> None:
    for _, joined in group:
        if not joined.done():
            joined.set_exception(exc)


# One per process and database (tests run several apps in one process).
_groups: "weakref.WeakKeyDictionary[AsyncEngine, JoinGroups]" = weakref.WeakKeyDictionary()


def join_groups(engine: AsyncEngine, settings: Settings) -> JoinGroups:
    groups = _groups.get(engine)
    if groups is None:
        groups = _groups[engine] = JoinGroups(engine, settings)
    return groups
