"""Every SQL statement on promotions, and on the orders holding their daily places."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.models import Campaign, CampaignStatus
from app.promotions.models import Promotion


async def get_promotion(session: AsyncSession, promotion_id: int) -> Promotion | None:
    return await session.get(Promotion, promotion_id)


def _shown_to_shoppers() -> ColumnElement[bool]:
    return or_(
        Promotion.campaign_id.is_(None),
        Promotion.campaign_id.in_(
            select(Campaign.id).where(Campaign.status == CampaignStatus.APPROVED.value)
        ),
    )


async def active(session: AsyncSession, *, now: datetime) -> Sequence[Promotion]:
    """Promotions in their window at `now` whose campaign is approved (or that have
    none): the ones a checkout may take; the largest amount off first."""
    rows = await session.scalars(
        select(Promotion)
        .where(Promotion.starts_at <= now, now < Promotion.ends_at, _shown_to_shoppers())
        .order_by(Promotion.amount_off.desc(), Promotion.id)
    )
    return rows.all()


async def not_ended(
    session: AsyncSession, *, now: datetime, limit: int, offset: int
) -> Sequence[Promotion]:
    """Every promotion whose window has not closed, approved or not (Redis holds each,
    `held` while its campaign is not approved)."""
    rows = await session.scalars(
        select(Promotion).where(now < Promotion.ends_at).order_by(Promotion.id)
        .limit(limit).offset(offset)
    )  # fmt: skip
    return rows.all()


async def of_campaign(session: AsyncSession, campaign_id: int) -> Sequence[Promotion]:
    rows = await session.scalars(
        select(Promotion).where(Promotion.campaign_id == campaign_id).order_by(Promotion.id)
    )
    return rows.all()


# One advisory lock key per promotion: checkouts share it while they take a place and
# commit their order; a rebuild takes it alone before reading who holds places.
_LOCK_KEY = "hashtextextended('promotion:' || CAST(CAST(:id AS bigint) AS text), 0)"


async def share_places_lock(session: AsyncSession, promotion_ids: Sequence[int]) -> None:
    """Until this transaction ends, no rebuild of these promotions reads Postgres (ids in
    ascending order, as every caller takes them)."""
    for promotion_id in sorted(set(promotion_ids)):
        await session.execute(
            text(f"SELECT pg_advisory_xact_lock_shared({_LOCK_KEY})"), {"id": promotion_id}
        )


async def lock_places(session: AsyncSession, promotion_id: int) -> None:
    """Wait for every transaction that shares the lock (a checkout between its Redis place
    and its commit) to end, and keep new ones out until this transaction ends."""
    await session.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"), {"id": promotion_id})


@dataclass(frozen=True, slots=True)
class Holder:
    day: date
    order_id: str
    user_id: str


async def holders(session: AsyncSession, promotion_id: int, days: Sequence[date]) -> list[Holder]:
    """The orders holding a place of the promotion on these days: every order that took
    one and is not cancelled (a cancelled order gave its place back, or will, once)."""
    rows = await session.execute(
        text(
            """
            SELECT promotion_day, id, user_id FROM orders
            WHERE promotion_id = :id AND promotion_day = ANY(CAST(:days AS date[]))
              AND status <> 'cancelled'
            ORDER BY id
            """
        ),
        {"id": promotion_id, "days": list(days)},
    )
    return [Holder(day=row[0], order_id=row[1], user_id=row[2]) for row in rows]


async def holding_on(session: AsyncSession, days: dict[int, date]) -> dict[int, set[str]]:
    """For each promotion, the orders holding a place on its day given (not cancelled)."""
    if not days:
        return {}
    rows = await session.execute(
        text(
            """
            SELECT o.promotion_id, o.id FROM orders AS o
            JOIN unnest(CAST(:ids AS bigint[]), CAST(:days AS date[])) AS d(id, day)
              ON o.promotion_id = d.id AND o.promotion_day = d.day
            WHERE o.status <> 'cancelled'
            """
        ),
        {"ids": list(days), "days": list(days.values())},
    )
    found: dict[int, set[str]] = {}
    for promotion_id, order_id in rows:
        found.setdefault(int(promotion_id), set()).add(order_id)
    return found


async def not_cancelled(session: AsyncSession, order_ids: Sequence[str]) -> set[str]:
    rows = await session.scalars(
        text(
            "SELECT id FROM orders WHERE id = ANY(CAST(:ids AS text[])) AND status <> 'cancelled'"
        ),
        {"ids": list(order_ids)},
    )
    return set(rows)
