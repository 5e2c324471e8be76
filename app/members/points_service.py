"""Points: paid orders earn one point per whole currency unit paid (members' orders
SECKILL_MEMBER_POINTS_MULTIPLIER times as many), a refund takes them back, and other
domains add points (add_points) under their own reason. Written in the transaction that
changes the order (app/members/settlement.py), never committed here."""

import logging
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import ValidationFailed
from app.members import points_repository as repository
from app.members.points_models import OrderReason
from app.members.points_schemas import PointEntryRead, PointsRead

logger = logging.getLogger(__name__)


def points_for(amount: Decimal, *, member: bool, multiplier: int) -> int:
    """One point per whole unit paid (19.90 earns 19), times the multiplier for members."""
    return int(amount // 1) * (multiplier if member else 1)


async def earn_for_order(
    *,
    session: AsyncSession,
    user_id: str,
    order_id: str,
    amount: Decimal,
    member: bool,
    multiplier: int,
) -> int:
    """The paid order's points (once per order); how many this call added."""
    points = points_for(amount, member=member, multiplier=multiplier)
    if points <= 0:  # under one unit paid: nothing to earn, nothing to take back later
        return 0
    added = await repository.add(
        session,
        user_id=user_id,
        points=points,
        reason=OrderReason.PAID.value,
        reference=order_id,
        order_id=order_id,
    )
    return points if added else 0


async def reverse_for_order(*, session: AsyncSession, user_id: str, order_id: str) -> int:
    """Take back the refunded order's points (once per order), never below a zero
    balance: points earned and spent since are left, and recorded as the entry's
    shortfall. How many this call took back."""
    reversal = await repository.reverse_order(session, user_id=user_id, order_id=order_id)
    if reversal is None:
        return 0
    if reversal.shortfall:
        logger.warning(
            "order %s refunded: %d of its points were spent, not taken back",
            order_id,
            reversal.shortfall,
        )
    return reversal.points


async def add_points(
    *, session: AsyncSession, user_id: str, points: int, reason: str, reference: str
) -> bool:
    """Give the user points for something of another domain (a lottery prize: reason
    `lottery_prize`, reference the prize's id), once per (reason, reference): True if
    this call added them, False if they were added before. Runs in the caller's
    transaction."""
    if points < 0:
        raise ValidationFailed("points to add must not be negative.", field="points")
    if reason in set(OrderReason):
        raise ValidationFailed(f"reason {reason!r} is the orders' own.", field="reason")
    return await repository.add(
        session, user_id=user_id, points=points, reason=reason, reference=reference
    )


async def my_points(*, session: AsyncSession, user_id: str, limit: int, offset: int) -> PointsRead:
    statement = await repository.statement_of(session, user_id, limit=limit, offset=offset)
    return PointsRead(
        balance=statement.balance,
        entries=[PointEntryRead.model_validate(e) for e in statement.entries],
    )
