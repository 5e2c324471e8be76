"""Every SQL statement of the members' figures in the sale and campaign reports: over the
orders of one event or one campaign (orders.event_id / orders.campaign_id)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.members.invites_models import RewardStatus
from app.members.points_models import OrderReason

Scope = Literal["event_id", "campaign_id"]


@dataclass(frozen=True, slots=True)
class PointFigures:
    earned: int
    reversed: int
    shortfall: int


@dataclass(frozen=True, slots=True)
class InviteFigures:
    accepted: int
    rewarded: int
    reward_failed: int


async def points_of(session: AsyncSession, *, scope: Scope, scope_id: int) -> PointFigures:
    """Points the scope's orders earned, and took back on refunds."""
    row = (
        await session.execute(
            text(
                f"""
                SELECT coalesce(sum(e.points) FILTER (WHERE e.reason = :paid), 0) AS earned,
                       coalesce(-sum(e.points) FILTER (WHERE e.reason = :refunded), 0)
                           AS reversed,
                       coalesce(sum(e.shortfall), 0) AS shortfall
                FROM orders AS o JOIN point_entries AS e ON e.order_id = o.id
                WHERE o.{scope} = :scope_id
                """
            ),
            {
                "scope_id": scope_id,
                "paid": OrderReason.PAID.value,
                "refunded": OrderReason.REFUNDED.value,
            },
        )
    ).one()
    return PointFigures(
        earned=int(row.earned), reversed=int(row.reversed), shortfall=int(row.shortfall)
    )


async def invites_of(
    session: AsyncSession,
    *,
    scope: Scope,
    scope_id: int,
    accepted_from: datetime | None,
    accepted_until: datetime | None,
) -> InviteFigures:
    """Invites accepted within [accepted_from, accepted_until) (none without a window),
    and invites whose reward the scope's orders decided (the invitee's first payment was
    one of them): granted, or failed."""
    row = (
        await session.execute(
            text(
                f"""
                SELECT (SELECT count(*) FROM invites
                        WHERE accepted_at >= :accepted_from AND accepted_at < :accepted_until)
                           AS accepted,
                       count(*) FILTER (WHERE i.reward_status = :granted) AS rewarded,
                       count(*) FILTER (WHERE i.reward_status = :failed) AS reward_failed
                FROM orders AS o JOIN invites AS i ON i.rewarded_order_id = o.id
                WHERE o.{scope} = :scope_id
                """
            ),
            {
                "scope_id": scope_id,
                "accepted_from": accepted_from,
                "accepted_until": accepted_until,
                "granted": RewardStatus.GRANTED.value,
                "failed": RewardStatus.FAILED.value,
            },
        )
    ).one()
    return InviteFigures(
        accepted=int(row.accepted),
        rewarded=int(row.rewarded),
        reward_failed=int(row.reward_failed),
    )
