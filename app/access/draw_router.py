from fastapi import APIRouter, status

from app.access import draw_service as service
from app.access.draw_errors import DrawNotFound, RegistrationNotFound
from app.access.draw_schemas import DrawRead, RegistrationRead
from app.access.gate_router import PowNonce
from app.auth import CurrentUser
from app.container import ContainerDep
from app.db import SessionDep
from app.errors import ChallengeRequired, Ended, NotStarted, Unauthorized, problem_responses
from app.ids import EventId
from app.moments import utc_now

router = APIRouter(prefix="/api/v1/events", tags=["draws"])


@router.post(
    "/{event_id}/registrations",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(Unauthorized, ChallengeRequired, DrawNotFound, NotStarted, Ended),
)
async def register(
    event_id: EventId,
    session: SessionDep,
    services: ContainerDep,
    user: CurrentUser,
    pow_nonce: PowNonce = None,
) -> RegistrationRead:
    """Register for a draw-mode event's raffle while its registration is open (409
    `not_started` / `ended` otherwise). Repeat-safe: a second registration is the first,
    answered again. With `pow_bits` > 0 it needs X-Seckill-Pow (403 `challenge_required`).
    An event that is not a draw answers 404 `not_found`: it has no draw to register for."""
    return await service.register(
        session=session,
        settings=services.settings,
        event_id=event_id,
        user=user,
        pow_nonce=pow_nonce,
        now=utc_now(),
    )


@router.get(
    "/{event_id}/registrations/me",
    responses=problem_responses(Unauthorized, DrawNotFound, RegistrationNotFound),
)
async def my_registration(
    event_id: EventId, session: SessionDep, services: ContainerDep, user: CurrentUser
) -> RegistrationRead:
    """The caller's registration: `registered` until the draw, then `won` (with the pass
    purchases need) or `lost`."""
    return await service.my_registration(
        session=session, settings=services.settings, event_id=event_id, user=user, now=utc_now()
    )


@router.get("/{event_id}/draw", responses=problem_responses(DrawNotFound))
async def get_draw(event_id: EventId, session: SessionDep, services: ContainerDep) -> DrawRead:
    """The draw in public: the seed's SHA-256 from the registration's start, the number of
    registrants, and after the draw the number of winners and the seed, so anyone can
    rank the registrants by hex HMAC-SHA256(seed, user id) and check the winners."""
    return await service.read_draw(
        session=session, settings=services.settings, event_id=event_id, now=utc_now()
    )
