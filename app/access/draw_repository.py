"""Every SQL statement on draws and their registrations."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import DateTime, String, any_, bindparam, case, cast, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.draw_models import Draw, DrawRegistration, Outcome
from app.events.models import Event

# One advisory lock key per draw: registrations share it until they commit; the draw
# takes it alone, so it counts every registration that got in and none gets in after.
_LOCK_KEY = "hashtextextended('draw:' || CAST(CAST(:id AS bigint) AS text), 0)"


async def share_registration_lock(session: AsyncSession, event_id: int) -> None:
    """Until this transaction ends, the event is not drawn."""
    await session.execute(
        text(f"SELECT pg_advisory_xact_lock_shared({_LOCK_KEY})"), {"id": event_id}
    )


async def take_draw_lock(session: AsyncSession, event_id: int, *, wait: bool) -> bool:
    """Wait for the registrations in flight to end and keep new ones out until this
    transaction ends; with `wait` False, False at once if another holds the lock."""
    if wait:
        await session.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"), {"id": event_id})
        return True
    taken = await session.scalar(
        text(f"SELECT pg_try_advisory_xact_lock({_LOCK_KEY})"), {"id": event_id}
    )
    return bool(taken)


async def get_draw(session: AsyncSession, event_id: int) -> Draw | None:
    return await session.scalar(
        select(Draw).where(Draw.event_id == event_id).execution_options(populate_existing=True)
    )


async def insert_draw(session: AsyncSession, *, event_id: int, seed: str, commitment: str) -> None:
    """The event's seed, unless another transaction stored one first (that one stands)."""
    await session.execute(
        insert(Draw)
        .values(event_id=event_id, seed=seed, seed_commitment=commitment)
        .on_conflict_do_nothing(index_elements=[Draw.event_id])
    )


async def lock_draw(session: AsyncSession, event_id: int) -> Draw | None:
    return await session.scalar(
        select(Draw)
        .where(Draw.event_id == event_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def insert_registration(session: AsyncSession, *, event_id: int, user_id: str) -> None:
    """Register the user, unless they already are (the first registration stands)."""
    await session.execute(
        insert(DrawRegistration)
        .values(event_id=event_id, user_id=user_id)
        .on_conflict_do_nothing(
            index_elements=[DrawRegistration.event_id, DrawRegistration.user_id]
        )
    )


async def get_registration(
    session: AsyncSession, *, event_id: int, user_id: str
) -> DrawRegistration | None:
    return await session.scalar(
        select(DrawRegistration)
        .where(DrawRegistration.event_id == event_id, DrawRegistration.user_id == user_id)
        .execution_options(populate_existing=True)
    )


async def count_registrants(session: AsyncSession, event_id: int) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(DrawRegistration)
        .where(DrawRegistration.event_id == event_id)
    )
    return int(count or 0)


async def registrant_ids(session: AsyncSession, event_id: int) -> Sequence[str]:
    rows = await session.scalars(
        select(DrawRegistration.user_id).where(DrawRegistration.event_id == event_id)
    )
    return rows.all()


async def record_outcomes(session: AsyncSession, *, event_id: int, winners: Sequence[str]) -> None:
    """Every registration of the event won (its user in `winners`) or lost. The winners
    travel as one array parameter: a list of bound values stops at 32,767."""
    chosen = bindparam("winners", list(winners), type_=ARRAY(String))
    await session.execute(
        update(DrawRegistration)
        .where(DrawRegistration.event_id == event_id)
        .values(
            outcome=case(
                (DrawRegistration.user_id == any_(chosen), int(Outcome.WON)),
                else_=int(Outcome.LOST),
            )
        )
    )


async def mark_drawn(
    session: AsyncSession, *, event_id: int, drawn_at: datetime, registrants: int, winners: int
) -> None:
    await session.execute(
        update(Draw)
        .where(Draw.event_id == event_id)
        .values(drawn_at=drawn_at, registrants_count=registrants, winners_count=winners)
    )


async def due_draws(session: AsyncSession, *, now: datetime, limit: int) -> Sequence[int]:
    """Draw-mode events whose registration has closed at `now` and that are not drawn, in
    id order."""
    closes_at = cast(Event.access["registration_ends_at"].astext, DateTime(timezone=True))
    rows = await session.scalars(
        select(Event.id)
        .outerjoin(Draw, Draw.event_id == Event.id)
        .where(
            Event.access["mode"].astext == "draw",
            closes_at <= now,
            Draw.drawn_at.is_(None),
        )
        .order_by(Event.id)
        .limit(limit)
    )
    return rows.all()
