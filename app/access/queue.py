"""Waiting rooms (access mode "queue", docs/CONTRACT.md "Fair access for hyped sales").
Never commits: the request's session owns the transaction, and it commits before the
answer is sent.

Everyone who joins between `opens_at` and the start is given a secret random score (52
random bits from this process's CSPRNG, never shown): at the start their order is
uniformly random, and nothing a joiner does before it can improve their place. Later
arrivals follow in arrival order (score 2^52 + their place's id). Redis holds the places in
a sorted set (queue.lua): a poll is one ZRANK, and admission needs no writer, since from
the start the first floor(seconds since the start x admit_per_second) ranks are admitted.

Postgres holds the truth: each place with its score is stored and committed before Redis
is told of it (with the other joins of the moment, app/access/queue_joins.py), and each
first admission is stored before its pass is handed out. A Redis that lost the queue is
loaded again from Postgres (on the first poll that finds it missing, or by the hot-store
check, app/flows/freshness.py); one that came back older than what a process saw is frozen
and rebuilt by that check. Either way the scores are the same, so the order is, and an
admitted place keeps its first admission time, so no place is admitted twice.

A poll of a place Redis holds asks Postgres nothing: the queue's hash carries what the
answer needs (the pass length, the rate, the item ids for the sold-out check). A join reads
the event (its window, access and proof of work) and stores the place, once for the
joins of the moment.
"""

import asyncio
import math
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.access import passes
from app.access import queue_repository as repository
from app.access.passes import pass_secret
from app.access.queue_errors import NotInQueue
from app.access.queue_joins import Joiner, QueueEvent, join_groups, queue_event
from app.access.queue_schemas import ClosedReason, QueueRead, QueueState
from app.auth import User
from app.container import Container
from app.db import SessionOf
from app.errors import Recovering
from app.events import service as events
from app.events.access import QueueAccess
from app.events.models import Event
from app.generations import repository as generations
from app.generations.service import remember_built
from app.moments import from_ms, to_ms, utc_now
from app.store.freezes import FROZEN_RETRY_AFTER_SECONDS
from app.store.queue import (
    ARRIVALS,
    QueueOutcome,
    QueueReply,
    close_queue,
    queue_script_call,
    restore_admission,
    run_queue,
)
from app.store.queue_keys import QueueKeys
from app.store.queue_load import QueuePlaces, QueueTerms, load_queue
from app.store.warmup import Build, Built

# A queue Redis lacks is loaded by one request at a time (a lock that outlives a dead
# loader by this long); the others look again this often, this many times in all.
LOAD_LOCK_MS = 30_000
LOAD_WAIT_SECONDS = 0.1
LOAD_ATTEMPTS = 20

ENDED = QueueRead(state=QueueState.CLOSED, reason=ClosedReason.ENDED)
QUEUES = "queues"  # the counter family of a waiting room's places (app/generations)


async def join(
    *,
    session_of: SessionOf,
    services: Container,
    event_id: int,
    user: User,
    pow_nonce: str | None,
) -> QueueRead:
    """Take a place (or keep the one held: repeat-safe) and answer the caller's state.
    The place is stored with the other joins of the moment (queue_joins.py) before Redis
    is told, so an answered place is in Postgres."""
    groups = join_groups(services.engine, services.settings)
    joined = await groups.join(event_id, Joiner(user, pow_nonce))
    event, place = joined.event, joined.place
    if place is None:
        return ENDED
    drawn = place.inserted and place.score < ARRIVALS
    reply = await _decide(session_of, services, event, user.id, place.score, drawn=drawn)
    if reply.outcome is QueueOutcome.TOO_LATE_TO_DRAW:
        # This process's clock said "before the start", Redis's (admission's) says after:
        # an arrival, not shuffled in ahead of places admitted already.
        arrival = await repository.score_as_arrival(
            session_of(), place_id=place.id, arrivals=ARRIVALS
        )
        reply = await _decide(session_of, services, event, user.id, arrival)
    return await _answer(session_of, services, event_id, user.id, reply)


async def look(
    *, session_of: SessionOf, services: Container, event_id: int, user: User
) -> QueueRead:
    """The caller's state in the queue (404 if they hold no place). A poll of a place Redis
    holds is one script call, with no Postgres (but the one write of a first admission);
    Postgres is read only when Redis lacks the queue or the place, or says it ended."""
    reply = await run_queue(
        services.redis,
        services.scripts,
        queue_script_call(
            keys=_keys(services, event_id),
            user_id=user.id,
            seen=services.queue_generations.known(event_id),
        ),
        services.queue_batches,
    )
    # Lacking the queue or the place, Postgres has them; ended, Postgres may have a later
    # end (the sale extended).
    slow = (QueueOutcome.NO_SUCH_QUEUE, QueueOutcome.NOT_IN_QUEUE, QueueOutcome.ENDED)
    if reply.outcome not in slow:
        services.queue_generations.saw(event_id, reply.generation)
        return await _answer(session_of, services, event_id, user.id, reply)
    event = await queue_event(db=session_of(), event_id=event_id)
    if utc_now() >= event.ends_at:
        # Closed for everyone: a pass would buy nothing now, and the queue's keys expire.
        return ENDED
    return await _state(
        session_of=session_of, services=services, event=event, user=user, score=None
    )


async def _state(
    *,
    session_of: SessionOf,
    services: Container,
    event: QueueEvent,
    user: User,
    score: int | None,
) -> QueueRead:
    reply = await _decide(session_of, services, event, user.id, score)
    if reply.outcome is QueueOutcome.NOT_IN_QUEUE:
        # Redis lacks a place Postgres has (lost with Redis's data): put it back, same score.
        stored = await repository.place_of(session_of(), event_id=event.id, user_id=user.id)
        if stored is None:
            raise NotInQueue(f"You hold no place in the queue of event {event.id}.")
        reply = await _decide(session_of, services, event, user.id, stored.score)
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
        raise Recovering(
            "The queue is being rebuilt; your place is kept.",
            retry_after_seconds=FROZEN_RETRY_AFTER_SECONDS,
        )
    if outcome is QueueOutcome.NOT_IN_QUEUE:
        raise NotInQueue(f"You hold no place in the queue of event {event_id}.")
    if outcome is QueueOutcome.ENDED:
        return ENDED
    if outcome is QueueOutcome.CLOSED:
        return QueueRead(state=QueueState.CLOSED, reason=ClosedReason.SOLD_OUT)
    if reply.admitted_ms is not None:
        admitted_ms = reply.admitted_ms
        if outcome is QueueOutcome.ADMITTED_NOW:
            admitted_ms = await _record_admission(
                session_of(), services, event_id, user_id, admitted_ms
            )
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


def _keys(services: Container, event_id: int) -> QueueKeys:
    return QueueKeys(services.settings.redis_key_prefix, event_id)


async def _decide(
    session_of: SessionOf,
    services: Container,
    event: QueueEvent,
    user_id: str,
    score: int | None,
    *,
    drawn: bool = False,
) -> QueueReply:
    """queue.lua for the user (`drawn`: queue_script_call's); a queue missing from Redis
    is loaded from Postgres first."""
    keys = _keys(services, event.id)
    seen = services.queue_generations
    refreshed = False
    for _attempt in range(LOAD_ATTEMPTS):
        reply = await run_queue(
            services.redis,
            services.scripts,
            queue_script_call(
                keys=keys, user_id=user_id, score=score, seen=seen.known(event.id), drawn=drawn
            ),
            services.queue_batches,
        )
        if reply.outcome is QueueOutcome.ENDED and utc_now() < event.ends_at and not refreshed:
            # The sale was extended after the queue was loaded: its end there is stale.
            await load_from_postgres(
                session=session_of(),
                services=services,
                event=event,
                build=Build.TERMS_ONLY,
            )
            refreshed = True
            continue
        if reply.outcome is not QueueOutcome.NO_SUCH_QUEUE:
            seen.saw(event.id, reply.generation)
            return reply
        await _load_missing(session_of(), services, event)
    return reply


async def _load_missing(session: AsyncSession, services: Container, event: QueueEvent) -> None:
    """Load a queue Redis lacks from what Postgres has, once: one request loads it while
    the others of the crowd that found it missing wait a moment (each reading every place
    of a large queue would swamp Postgres). In the request's own transaction: a second
    connection per request could starve the pool under a crowd."""
    keys = _keys(services, event.id)
    lock = keys.loading
    if not await services.redis.set(lock, "1", nx=True, px=LOAD_LOCK_MS):
        await asyncio.sleep(LOAD_WAIT_SECONDS)
        return
    try:
        if await services.redis.hexists(keys.queue, "epoch"):
            return  # loaded by the one before, whose "missing" this call saw as well
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
    session: AsyncSession, services: Container, event_id: int, user_id: str, admitted_ms: int
) -> int:
    """Postgres keeps the first admission; a Redis that forgot it takes Postgres's back."""
    stored = await repository.record_admission(
        session, event_id=event_id, user_id=user_id, admitted_at=from_ms(admitted_ms)
    )
    if stored is None:  # no such place in Postgres (a join whose commit failed)
        return admitted_ms
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
    """Load the queue's terms and, as `build` says, every place and admission `session`
    sees (a place whose join has not committed yet is put back by that user's next poll).
    The caller remembers the generation built (app/generations)."""
    stored = (
        [] if build is Build.TERMS_ONLY else await repository.places(session, event_id=event.id)
    )
    return await load_queue(
        redis=services.redis,
        scripts=services.scripts,
        keys=_keys(services, event.id),
        terms=QueueTerms(
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            admit_per_second=event.access.admit_per_second,
            expires_at=event.ends_at + timedelta(seconds=services.settings.retire_after_seconds),
            pass_seconds=event.access.pass_seconds,
            item_ids=event.item_ids,
        ),
        places=QueuePlaces(
            places={user_id: score for user_id, score, _admitted in stored},
            admitted={user_id: to_ms(admitted) for user_id, _score, admitted in stored if admitted},
        ),
        build=build,
        min_epoch=min_epoch,
    )


async def publish_queues(
    *, session: AsyncSession, services: Container, queue_events: Sequence[Event]
) -> None:
    """Load queues never built; one built before and missing was lost: loaded again from
    Postgres, which holds every place answered (nothing answered can be missing)."""
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
    """Replace a frozen queue's places and admissions with Postgres's, in a new generation
    above every one Postgres remembers."""
    access = events.access_of(event)
    if not isinstance(access, QueueAccess):
        return Built(loaded=-1, epoch=0)
    async with services.sessionmaker() as session:
        newest = (await generations.built_epochs(session, QUEUES, [event.id])).get(event.id, 0)
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
