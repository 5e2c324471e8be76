from fastapi import APIRouter

from app.access import queue
from app.access.gate_router import PowNonce
from app.access.queue_errors import NotAQueue, NotInQueue
from app.access.queue_schemas import QueueRead
from app.auth import CurrentUser
from app.container import ContainerDep
from app.db import SessionOfDep
from app.errors import ChallengeRequired, NotStarted, Recovering, Unauthorized, problem_responses
from app.events.errors import EventNotFound
from app.ids import EventId

router = APIRouter(prefix="/api/v1/events", tags=["fair access"])


@router.post(
    "/{event_id}/queue",
    response_model_exclude_none=True,
    responses=problem_responses(
        Unauthorized, ChallengeRequired, EventNotFound, NotAQueue, NotStarted, Recovering
    ),
)
async def join_queue(
    event_id: EventId,
    session_of: SessionOfDep,
    services: ContainerDep,
    user: CurrentUser,
    pow_nonce: PowNonce = None,
) -> QueueRead:
    """Take a place in the event's waiting room (repeat-safe: the same user keeps one
    place) and get your state. Everyone who joins between `opens_at` and `starts_at` is put
    in a uniformly random order at `starts_at` (no position before it); later arrivals
    follow in arrival order. From `starts_at` the queue admits `admit_per_second` places a
    second; an admitted user gets a `pass`. 409 `invalid_state` if the event has no waiting
    room, `not_started` before `opens_at`; `closed` once the sale sold out or ended."""
    return await queue.join(
        session_of=session_of,
        services=services,
        event_id=event_id,
        user=user,
        pow_nonce=pow_nonce,
    )


@router.get(
    "/{event_id}/queue",
    response_model_exclude_none=True,
    responses=problem_responses(Unauthorized, EventNotFound, NotAQueue, NotInQueue, Recovering),
)
async def queue_state(
    event_id: EventId, session_of: SessionOfDep, services: ContainerDep, user: CurrentUser
) -> QueueRead:
    """Your state in the event's waiting room: waiting (position and estimated wait from
    the start), admitted (with the pass), or closed (sold out, ended). 404 if you hold no
    place."""
    return await queue.look(session_of=session_of, services=services, event_id=event_id, user=user)
