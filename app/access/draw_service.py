"""Draws (抽签): a raffle for a hyped sale (docs/CONTRACT.md, "Fair access for hyped
sales"). Shoppers register in a window; after it a seed committed to before the first
registration ranks them by HMAC-SHA256(seed, user id), the first `winners` win a pass.

Where registrations live. In Postgres, one row per user and event (`draw_registrations`,
primary key (event_id, user_id)), written with INSERT ... ON CONFLICT DO NOTHING: a
repeat or a crowd of the same user is one row by the primary key, and a registration
that answered 201 is committed, so none is lost or counted twice. This is not the
purchase path: a registration is once per user per event, spread over a window of
minutes or days instead of the first second of a sale, and no stock is decided by it,
so Postgres takes the crowd (an index insert each) without Redis's hot counters or a
rebuild protocol. The draw needs the complete list anyway, which Postgres has.

Fairness. The seed (secrets.token_hex(32)) is stored when first needed, at the latest by
the first registration, and its SHA-256 is public from `registration_starts_at` (GET
.../draw); the seed itself only once the draw is done. Registrations share an advisory
lock that the draw takes alone, and refuse once the draw is stored: the draw counts
every registration that answered 201 and no other, whatever the clocks of the processes
say. Anyone can recompute the winners from the revealed seed and the registrants.

The draw runs once per event (its `draws` row locked, `drawn_at` set in the same
transaction): by the worker (app/flows/draws.py) once registration closes, or by the
first read after the close, whichever comes first.
"""

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.access import draw_repository as repository
from app.access.draw_errors import DrawNotFound, RegistrationNotFound
from app.access.draw_models import Draw, DrawRegistration, Outcome
from app.access.draw_schemas import DrawRead, RegistrationRead, RegistrationStatus
from app.access.gate import require_pow
from app.access.passes import Pass, issue, pass_secret
from app.auth import User
from app.config import Settings
from app.errors import Ended, NotStarted
from app.events import service as events
from app.events.access import DrawAccess
from app.events.models import Event
from app.moments import to_ms

STATUS: dict[Outcome, RegistrationStatus] = {
    Outcome.REGISTERED: "registered",
    Outcome.WON: "won",
    Outcome.LOST: "lost",
}


# -- the published rules: anyone can recompute a draw with these ---------------------


def new_seed() -> str:
    return secrets.token_hex(32)


def commitment_of(seed: str) -> str:
    """Hex SHA-256 of the seed (UTF-8): published before registration, checked after."""
    return hashlib.sha256(seed.encode("utf-8")).hexdigest()


def rank_key(seed: str, user_id: str) -> str:
    """Hex HMAC-SHA256(key = seed, message = user id), both UTF-8: lowest ranks first."""
    return hmac.new(seed.encode("utf-8"), user_id.encode("utf-8"), hashlib.sha256).hexdigest()


def ranking(seed: str, user_ids: Iterable[str]) -> list[str]:
    """The registrants in draw order (ties, a SHA-256 collision, by user id)."""
    return sorted(user_ids, key=lambda user_id: (rank_key(seed, user_id), user_id))


def winners_wanted(event: Event, access: DrawAccess) -> int:
    """The access's `winners`, else the event's total stock."""
    if access.winners is not None:
        return access.winners
    return sum(item.stock for item in event.items)


def pass_of(settings: Settings, *, event: Event, access: DrawAccess, user_id: str) -> str:
    """A winner's pass, valid from the event's start for purchase_window_seconds. The
    same inputs sign the same string, so it is made again on every read, not stored."""
    valid_from_ms = to_ms(event.starts_at)
    return issue(
        pass_secret(settings),
        Pass(
            event_id=event.id,
            user_id=user_id,
            valid_from_ms=valid_from_ms,
            valid_until_ms=valid_from_ms + access.purchase_window_seconds * 1000,
        ),
    )


# -- the endpoints ------------------------------------------------------------------


async def draw_event(
    *, session: AsyncSession, event_id: int, shopper: bool = True
) -> tuple[Event, DrawAccess]:
    """The event and its draw terms; DrawNotFound if there is no such event, if shoppers
    do not see it yet (`shopper`), or if it is not a draw."""
    event = await events.get_event_row(session=session, event_id=event_id)
    access = events.access_of(event)
    if not isinstance(access, DrawAccess) or (shopper and not events.shown_to_shoppers(event)):
        raise DrawNotFound(f"Event {event_id} has no draw.")
    return event, access


async def register(
    *,
    session: AsyncSession,
    settings: Settings,
    event_id: int,
    user: User,
    pow_nonce: str | None,
    now: datetime,
) -> RegistrationRead:
    """Register `user` for the event's draw (a repeat answers the first registration)."""
    event, access = await draw_event(session=session, event_id=event_id)
    if now < access.registration_starts_at:
        raise NotStarted(f"Registration for event {event_id} has not opened yet.")
    if now >= access.registration_ends_at:
        raise Ended(f"Registration for event {event_id} has closed.")
    await require_pow(event=event, user=user, nonce=pow_nonce, settings=settings)
    await repository.share_registration_lock(session, event_id)
    draw = await committed_draw(session=session, event_id=event_id)
    if draw.drawn_at is not None:
        raise Ended(f"Event {event_id} has been drawn.")
    await repository.insert_registration(session, event_id=event_id, user_id=user.id)
    registration = await repository.get_registration(session, event_id=event_id, user_id=user.id)
    assert registration is not None, "inserted or found under the same lock"
    return registration_read(settings, event=event, access=access, registration=registration)


async def read_draw(
    *, session: AsyncSession, settings: Settings, event_id: int, now: datetime
) -> DrawRead:
    event, access = await draw_event(session=session, event_id=event_id)
    if now < access.registration_starts_at:
        return DrawRead(seed_commitment=None, registrants=0, winners=None)
    if now >= access.registration_ends_at:
        await draw(session=session, event=event, access=access, now=now, wait=False)
    found = await committed_draw(session=session, event_id=event_id)
    if found.drawn_at is None:
        registrants = await repository.count_registrants(session, event_id)
        return DrawRead(
            seed_commitment=found.seed_commitment, registrants=registrants, winners=None
        )
    return DrawRead(
        seed_commitment=found.seed_commitment,
        registrants=found.registrants_count or 0,
        winners=found.winners_count,
        seed=found.seed,
    )


async def my_registration(
    *, session: AsyncSession, settings: Settings, event_id: int, user: User, now: datetime
) -> RegistrationRead:
    event, access = await draw_event(session=session, event_id=event_id)
    if now >= access.registration_ends_at:
        await draw(session=session, event=event, access=access, now=now, wait=False)
    registration = await repository.get_registration(session, event_id=event_id, user_id=user.id)
    if registration is None:
        raise RegistrationNotFound(f"You did not register for event {event_id}'s draw.")
    return registration_read(settings, event=event, access=access, registration=registration)


def registration_read(
    settings: Settings, *, event: Event, access: DrawAccess, registration: DrawRegistration
) -> RegistrationRead:
    outcome = Outcome(registration.outcome)
    return RegistrationRead(
        status=STATUS[outcome],
        registered_at=registration.registered_at,
        pass_=(
            pass_of(settings, event=event, access=access, user_id=registration.user_id)
            if outcome is Outcome.WON
            else None
        ),
    )


# -- the draw -----------------------------------------------------------------------


async def committed_draw(*, session: AsyncSession, event_id: int) -> Draw:
    """The event's draw row, its seed made now if it has none yet."""
    found = await repository.get_draw(session, event_id)
    if found is None:
        seed = new_seed()
        await repository.insert_draw(
            session, event_id=event_id, seed=seed, commitment=commitment_of(seed)
        )
        found = await repository.get_draw(session, event_id)
    assert found is not None, "inserted, or another transaction's insert committed"
    return found


async def draw(
    *, session: AsyncSession, event: Event, access: DrawAccess, now: datetime, wait: bool
) -> bool:
    """Draw the event if its registration has closed and it is not drawn yet; True if
    this call drew it. With `wait` False it gives up at once while another transaction
    draws or registers (a read then answers the state before the draw)."""
    if now < access.registration_ends_at:
        return False
    if not await repository.take_draw_lock(session, event.id, wait=wait):
        return False
    await committed_draw(session=session, event_id=event.id)
    found = await repository.lock_draw(session, event.id)
    assert found is not None, "made above"
    if found.drawn_at is not None:
        return False
    registrants = await repository.registrant_ids(session, event.id)
    # ~2 µs of hashing per registrant: off the event loop, so a large draw run by a read
    # does not stall the process's other requests.
    ranked = await asyncio.to_thread(ranking, found.seed, registrants)
    winners = ranked[: winners_wanted(event, access)]
    await repository.record_outcomes(session, event_id=event.id, winners=winners)
    await repository.mark_drawn(
        session,
        event_id=event.id,
        drawn_at=now,
        registrants=len(registrants),
        winners=len(winners),
    )
    return True


async def draw_due(*, session: AsyncSession, event_id: int, now: datetime) -> bool:
    """The worker's step for one event (in its own transaction): True if drawn now."""
    event, access = await draw_event(session=session, event_id=event_id, shopper=False)
    return await draw(session=session, event=event, access=access, now=now, wait=True)


async def due_events(*, session: AsyncSession, now: datetime, limit: int) -> list[int]:
    return list(await repository.due_draws(session, now=now, limit=limit))
