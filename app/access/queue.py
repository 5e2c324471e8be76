"""Waiting rooms (access mode "queue", docs/CONTRACT.md "Fair access for hyped sales").
Never commits: the request's session owns the transaction, and it commits before the
answer is sent.

Everyone who joins between `opens_at` and the start is given a secret random score (52
random bits from this process's CSPRNG, never shown): at the start their order is
uniformly random, and nothing a joiner does before it can improve their place. Later
arrivals follow in arrival order (score 2^52 + their arrival number, counted by Redis).
Redis holds the places in a sorted set (queue.lua): a poll is one ZRANK, and admission
needs no writer, since from the start the first floor(seconds since the start x
admit_per_second) ranks are admitted.

A join is decided in Redis alone, as a purchase is: queue.lua checks the queue's terms
(open, not hidden, the proof of work's difficulty), adds the place and appends it to the
queue's joins stream in the same call, and the order writer stores it in Postgres
(app/flows/writer.py); a place not stored yet is in the `queued` hash. Each first
admission is stored before its pass is handed out (with its place, if the writer has not
stored it yet). A Redis that lost the queue is loaded again from Postgres and the places
still queued (on the first call that finds it missing, or by the hot-store check,
app/flows/freshness.py); one that came back older than what a process saw, or older than
a join Postgres stored, is frozen and rebuilt by that check, as a sale is. The scores are
the same, so the order is, and an admitted place keeps its first admission time, so no
place is admitted twice.

A join or a poll of a queue Redis holds asks Postgres nothing: the queue's hash carries
what the answer needs (the pass length, the rate, the item ids for the sold-out check).
Postgres is read when Redis lacks the queue or the place, or refuses a join on terms it
may hold stale (not open yet, hidden, ended).
"""

import asyncio
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.access import passes
from app.access import queue_repository as repository
from app.access.gate import challenge_required, proof_bits
from app.access.passes import pass_secret
from app.access.queue_errors import NotAQueue, NotInQueue
from app.access.queue_schemas import ClosedReason, QueueRead, QueueState
from app.auth import User
from app.container import Container
from app.db import Connectable, SessionOf
from app.errors import NotStarted, Recovering
from app.events import service as events
from app.events.access import ACCESS, QueueAccess
from app.events.errors import EventNotFound
from app.events.models import Event
from app.generations import repository as generations
from app.generations.service import remember_built
from app.moments import from_ms, to_ms, utc_now
from app.store.freezes import FROZEN_RETRY_AFTER_SECONDS
from app.store.queue import (
    RANDOM_BITS,
    QueueOutcome,
    QueueReply,
    close_queue,
    queue_script_call,
    restore_admission,
    run_queue,
)
from app.store.queue_keys import QueueKeys
from app.store.queue_load import QueuePlaces, QueueTerms, load_queue
from app.store.records import parse_queued_place
from app.store.warmup import Build, Built

# A queue Redis lacks is loaded by one request at a time (a lock that outlives a dead
# loader by this long); the others look again this often, this many times in all.
LOAD_LOCK_MS = 30_000
LOAD_WAIT_SECONDS = 0.1
LOAD_ATTEMPTS = 20

ENDED = QueueRead(state=QueueState.CLOSED, reason=ClosedReason.ENDED)
QUEUES = "queues"  # the counter family of a waiting room's places (app/generations)
# Answers Redis gives without Postgres, unless it lacks the queue or the place, or its
# terms may be stale (the event opened, shown or extended since they were loaded).
_ASK_POSTGRES = (
    QueueOutcome.NO_SUCH_QUEUE,
    QueueOutcome.NOT_IN_QUEUE,
    QueueOutcome.NOT_OPEN,
    QueueOutcome.ENDED,
)


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """What the waiting room needs of its event, read in one light query (an event with
    its items as ORM objects costs several times a join's own work)."""

    id: int
    starts_at: datetime
    ends_at: datetime
    access: QueueAccess
    item_ids: tuple[int, ...]
    shown: bool = True  # False: its campaign is not approved (nobody joins)

    @classmethod
    def of(cls, event: Event, access: QueueAccess) -> "QueueEvent":
        return cls(
            id=event.id,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            access=access,
            item_ids=tuple(item.id for item in event.items),
            shown=events.campaign_shows(event.campaign.status if event.campaign else None),
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


async def join(
    *,
    session_of: SessionOf,
    services: Container,
    event_id: int,
    user: User,
    pow_nonce: str | None,
) -> QueueRead:
    """Take a place (or keep the one held: repeat-safe) and answer the caller's state,
    decided in Redis (queue.lua; the order writer stores the place)."""
    # Drawn here, kept secret: the order at the start is uniformly random. queue.lua uses
    # it only for a new place before the start (by its clock, the one admission runs on).
    score = secrets.randbits(RANDOM_BITS)
    zero_bits = proof_bits(
        settings=services.settings, event_id=event_id, user=user, nonce=pow_nonce
    )
    reply = await _ask_redis(services, event_id, user.id, score=score, pow_zero_bits=zero_bits)
    if reply.outcome in _ASK_POSTGRES:
        event = await queue_event(db=session_of(), event_id=event_id)
        now = utc_now()
        if now < event.access.opens_at:
            raise NotStarted(f"The queue opens at {event.access.opens_at.isoformat()}.")
        if now >= event.ends_at:
            return ENDED  # a place now would never be admitted
        reply = await _decide(session_of, services, event, user.id, score, pow_zero_bits=zero_bits)
        if reply.outcome is QueueOutcome.NOT_OPEN:  # Redis's clock is behind this one's
            raise NotStarted(f"The queue opens at {event.access.opens_at.isoformat()}.")
    else:
        services.queue_generations.saw(event_id, reply.generation)
    if reply.outcome is QueueOutcome.CHALLENGE:
        raise challenge_required(event_id=event_id, bits=reply.pow_bits, nonce=pow_nonce)
    return await _answer(session_of, services, event_id, user.id, reply)


async def _ask_redis(
    services: Container,
    event_id: int,
    user_id: str,
    *,
    score: int | None = None,
    pow_zero_bits: int = -1,
    restore: bool = False,
) -> QueueReply:
    """queue.lua's answer (queue_script_call's arguments), sent with this loop turn's
    other calls."""
    return await run_queue(
        services.redis,
        services.scripts,
        queue_script_call(
            keys=_keys(services, event_id),
            user_id=user_id,
            score=score,
            seen=services.queue_generations.known(event_id),
            pow_zero_bits=pow_zero_bits,
            restore=restore,
        ),
        services.queue_batches,
    )


async def look(
    *, session_of: SessionOf, services: Container, event_id: int, user: User
) -> QueueRead:
    """The caller's state in the queue (404 if they hold no place). A poll of a place Redis
    holds is one script call, with no Postgres (but the one write of a first admission);
    Postgres is read only when Redis lacks the queue or the place, or says it ended."""
    reply = await _ask_redis(services, event_id, user.id)
    # Lacking the queue or the place, Postgres has them; ended, Postgres may have a later
    # end (the sale extended).
    if reply.outcome not in _ASK_POSTGRES:
        services.queue_generations.saw(event_id, reply.generation)
        return await _answer(session_of, services, event_id, user.id, reply)
    event = await queue_event(db=session_of(), event_id=event_id)
    if utc_now() >= event.ends_at:
        # Closed for everyone: a pass would buy nothing now, and the queue's keys expire.
        return ENDED
    return await _state(session_of=session_of, services=services, event=event, user=user)


async def _state(
    *,
    session_of: SessionOf,
    services: Container,
    event: QueueEvent,
    user: User,
) -> QueueRead:
    reply = await _decide(session_of, services, event, user.id, None)
    if reply.outcome is QueueOutcome.NOT_IN_QUEUE:
        # Redis lacks a place Postgres has (lost with Redis's data): put it back, same score.
        stored = await repository.place_of(session_of(), event_id=event.id, user_id=user.id)
        if stored is None:
            raise NotInQueue(f"You hold no place in the queue of event {event.id}.")
        reply = await _decide(session_of, services, event, user.id, stored.score, restore=True)
    return await _answer(session_of, services, event.id, user.id, reply)


async def _answer(
    session_of: SessionOf,
    services: Container,
    event_id: int,
    user_id: str,
    reply: QueueReply,
) -> QueueRead:
    """What queue.lua decided, as the caller's state (the pass signed here)."""
    outcome = reply.outcome
    if outcome in (QueueOutcome.RECOVERING, QueueOutcome.NO_SUCH_QUEUE):
        raise _recovering()
    if outcome is QueueOutcome.NOT_IN_QUEUE:
        raise NotInQueue(f"You hold no place in the queue of event {event_id}.")
    if outcome is QueueOutcome.ENDED:
        return ENDED
    if outcome is QueueOutcome.CLOSED:
        return QueueRead(state=QueueState.CLOSED, reason=ClosedReason.SOLD_OUT)
    if reply.admitted_ms is not None:
        admitted_ms = reply.admitted_ms
        if outcome is QueueOutcome.ADMITTED_NOW:
            admitted_ms = await _record_admission(session_of(), services, event_id, user_id, reply)
        return QueueRead(
            state=QueueState.ADMITTED,
            pass_=passes.issue(
                pass_secret(services.settings),
                passes.Pass(
                    event_id=event_id,
                    user_id=user_id,
                    valid_from_ms=admitted_ms,
                    valid_until_ms=admitted_ms + reply.pass_ms,
                ),
            ),
        )
    if reply.rank is None:  # before the start: the order is drawn at the start
        return QueueRead(state=QueueState.WAITING)
    if await _sold_out(services, reply.item_ids):
        await close_queue(services.redis, _keys(services, event_id))
        return QueueRead(state=QueueState.CLOSED, reason=ClosedReason.SOLD_OUT)
    return QueueRead(
        state=QueueState.WAITING,
        position=reply.rank + 1,
        estimated_wait_seconds=estimated_wait_seconds(
            rank=reply.rank, admitted_count=reply.admitted_count, rate=reply.admit_per_second
        ),
    )


def estimated_wait_seconds(*, rank: int, admitted_count: int, rate: int) -> int:
    """Until `admitted_count` passes `rank`, at `rate` admissions a second."""
    return math.ceil(max(0, rank + 1 - admitted_count) / rate)


def _recovering() -> Recovering:
    return Recovering(
        "The queue is being rebuilt; your place is kept.",
        retry_after_seconds=FROZEN_RETRY_AFTER_SECONDS,
    )


def _keys(services: Container, event_id: int) -> QueueKeys:
    return QueueKeys(services.settings.redis_key_prefix, event_id)


async def _decide(
    session_of: SessionOf,
    services: Container,
    event: QueueEvent,
    user_id: str,
    score: int | None,
    *,
    pow_zero_bits: int = -1,
    restore: bool = False,
) -> QueueReply:
    """queue.lua for the user (`pow_zero_bits`, `restore`: queue_script_call's); a queue
    missing from Redis is loaded from Postgres first, terms Redis holds stale (an end or
    an opening Postgres has moved, a campaign approved since) are loaded again."""
    refreshed = False
    for _attempt in range(LOAD_ATTEMPTS):
        reply = await _ask_redis(
            services,
            event.id,
            user_id,
            score=score,
            pow_zero_bits=pow_zero_bits,
            restore=restore,
        )
        stale = (
            reply.outcome is QueueOutcome.ENDED and utc_now() < event.ends_at
        ) or reply.outcome is QueueOutcome.NOT_OPEN  # the caller found it open and shown
        if stale and not refreshed:
            # The sale was extended, reopened or approved after the queue was loaded.
            await load_from_postgres(
                session=session_of(),
                services=services,
                event=event,
                build=Build.TERMS_ONLY,
            )
            refreshed = True
            continue
        if reply.outcome is not QueueOutcome.NO_SUCH_QUEUE:
            services.queue_generations.saw(event.id, reply.generation)
            return reply
        await _load_missing(session_of(), services, event)
    return reply


async def _load_missing(session: AsyncSession, services: Container, event: QueueEvent) -> None:
    """Load a queue never built into Redis, once: one request loads it while the others
    of the crowd that found it missing wait a moment. One built before and missing now
    was lost with places that may not be stored yet: the hot-store check rebuilds it (and
    freezes it, as a sale), so this answers `recovering`. In the request's own
    transaction: a second connection per request could starve the pool under a crowd."""
    keys = _keys(services, event.id)
    lock = keys.loading
    if not await services.redis.set(lock, "1", nx=True, px=LOAD_LOCK_MS):
        await asyncio.sleep(LOAD_WAIT_SECONDS)
        return
    try:
        if await services.redis.hexists(keys.queue, "epoch"):
            return  # loaded by the one before, whose "missing" this call saw as well
        if await generations.built_epochs(session, QUEUES, [event.id]):
            raise _recovering()
        built = await load_from_postgres(
            session=session,
            services=services,
            event=event,
            build=Build.IF_NEVER_BUILT,
        )
    finally:
        await services.redis.delete(lock)
    if built.written:
        await generations.record_built(session, QUEUES, {event.id: built.epoch})


async def _record_admission(
    session: AsyncSession, services: Container, event_id: int, user_id: str, reply: QueueReply
) -> int:
    """Postgres keeps the first admission (and the place, if the writer has not stored it
    yet); a Redis that forgot an earlier one takes Postgres's back."""
    assert reply.admitted_ms is not None
    assert reply.score is not None
    admitted_ms = reply.admitted_ms
    stored = await repository.record_admission(
        session,
        event_id=event_id,
        user_id=user_id,
        admitted_at=from_ms(admitted_ms),
        score=reply.score,
        joined_at=from_ms(reply.joined_ms if reply.joined_ms is not None else admitted_ms),
    )
    first_ms = to_ms(stored)
    if first_ms != admitted_ms:
        await restore_admission(
            services.redis, _keys(services, event_id), user_id=user_id, admitted_ms=first_ms
        )
    return first_ms


async def _sold_out(services: Container, ids: Sequence[int]) -> bool:
    """Is every item of the event gone? The process's sold-out marks first (free), then
    the items' live stock in Redis (one read for the loop turn's polls of the event)."""
    if not ids:
        return False
    if all(services.sold_out.is_sold_out(i) for i in ids):
        return True
    left = await services.stock_reads.read(ids)
    return all(stock is not None and stock <= 0 for stock in left.values())


# -- loading from Postgres ---------------------------------------------------------------


async def load_from_postgres(
    *,
    session: AsyncSession,
    services: Container,
    event: QueueEvent,
    build: Build,
    min_epoch: int = 0,
) -> Built:
    """Load the queue's terms and, as `build` says, every place and admission: those
    still queued for the writer (read first), then those `session` sees, so a place the
    writer stores meanwhile is in one or the other. The caller remembers the generation
    built (app/generations)."""
    keys = _keys(services, event.id)
    places: dict[str, int] = {}
    admitted: dict[str, int] = {}
    newest_join = None
    if build is not Build.TERMS_ONLY:
        for user_id, value in (await services.redis.hgetall(keys.queued)).items():
            if (queued := parse_queued_place(str(user_id), event.id, str(value))) is not None:
                places[queued.id] = queued.score
        # Postgres after the queued places (a rebuild's snapshot begins here).
        newest_join = (await repository.newest_joins(session, [event.id])).get(event.id)
        for user_id, score, admitted_at in await repository.places(session, event_id=event.id):
            places[user_id] = score
            if admitted_at is not None:
                admitted[user_id] = to_ms(admitted_at)
    elif not await services.redis.exists(keys.joins):
        # A stream made now: its last id must not look older than the places stored.
        newest_join = (await repository.newest_joins(session, [event.id])).get(event.id)
    return await load_queue(
        redis=services.redis,
        scripts=services.scripts,
        keys=keys,
        terms=QueueTerms(
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            admit_per_second=event.access.admit_per_second,
            expires_at=event.ends_at + timedelta(seconds=services.settings.retire_after_seconds),
            pass_seconds=event.access.pass_seconds,
            item_ids=event.item_ids,
            opens_at=event.access.opens_at,
            pow_bits=event.access.pow_bits,
            hidden=not event.shown,
        ),
        group=services.settings.worker_group,
        places=QueuePlaces(places=places, admitted=admitted, newest_join=newest_join),
        build=build,
        min_epoch=min_epoch,
    )


async def publish_queues(
    *, session: AsyncSession, services: Container, queue_events: Sequence[Event]
) -> None:
    """Load queues never built (the hot-store check's new ones); one built before and
    missing is the check's to rebuild."""
    for event in queue_events:
        access = events.access_of(event)
        if isinstance(access, QueueAccess):
            built = await load_from_postgres(
                session=session,
                services=services,
                event=QueueEvent.of(event, access),
                build=Build.IF_NEVER_BUILT,
            )
            if built.written:
                await remember_built(services.sessionmaker, QUEUES, {event.id: built.epoch})


async def rebuild_queue(*, services: Container, event: Event) -> Built:
    """Replace a frozen queue's places and admissions with those Postgres and the joins
    stream hold, in a new generation above every one Postgres remembers."""
    access = events.access_of(event)
    if not isinstance(access, QueueAccess):
        return Built(loaded=-1, epoch=0)
    async with services.sessionmaker() as session:
        newest = (await generations.built_epochs(session, QUEUES, [event.id])).get(event.id, 0)
    async with services.sessionmaker() as session:
        # One snapshot of Postgres, begun by its first read, after the queued places are
        # read (load_from_postgres): a place the writer commits meanwhile is in one of them.
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        built = await load_from_postgres(
            session=session,
            services=services,
            event=QueueEvent.of(event, access),
            build=Build.REBUILD,
            min_epoch=newest,
        )
    if built.written:
        await remember_built(services.sessionmaker, QUEUES, {event.id: built.epoch})
    return built


async def queue_events_not_ended(*, session: AsyncSession) -> list[Event]:
    """Every queue event whose sale has not ended (the hot-store check's)."""
    return list(await repository.queue_events_not_ended(session, now=utc_now()))


async def newest_joins(*, session: AsyncSession, event_ids: list[int]) -> dict[int, datetime]:
    """Each queue's newest stored join (the hot-store check's)."""
    return await repository.newest_joins(session, event_ids)
