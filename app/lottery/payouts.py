"""Paying a won prize, once: the steps a payout job runs (app/flows/lottery_payouts.py).

A win moves from `pending` to `paid` in the same transaction that pays it, and only if it
is still pending (lottery_wins, repository.mark_paid): a payout retried after a crash, or
run by two runners at once (each locks the wins it takes, skipping the other's), pays each
win once. What is paid is named by the win: a coupon prize's coupon id is derived from the
win's (order_ids.prize_coupon_id, a user_coupons primary key), so even a repeated insert
stores one coupon.
"""

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.coupons import repository as coupons
from app.lottery import repository
from app.lottery.models import LotteryWin, PrizeKind
from app.members import points_service as points_ledger
from app.moments import utc_now
from app.store.order_ids import prize_coupon_id

# The points ledger's reason for a won points prize; the win's id is the reference, so a
# win is credited once whatever retries its payout (app/members: one entry per reason and
# reference).
POINTS_REASON = "lottery_prize"


async def pay_points(session: AsyncSession, *, win_id: str, user_id: str, points: int) -> int:
    """Credit `points` to `user_id` for the win `win_id` in the payout's transaction (the
    points ledger, once per win); the points credited."""
    await points_ledger.add_points(
        session=session, user_id=user_id, points=points, reason=POINTS_REASON, reference=win_id
    )
    return points


async def pay_win(session: AsyncSession, win: LotteryWin) -> bool:
    """Pay one pending coupon or points win; False if it was paid already."""
    prize = win.prize
    user_coupon_id: str | None = None
    points: int | None = None
    if prize.kind == PrizeKind.COUPON.value:
        assert prize.coupon_id is not None
        coupon = await coupons.get_coupon(session, prize.coupon_id)
        assert coupon is not None  # a foreign key
        if coupon.valid_until is not None:
            valid_until = coupon.valid_until
        else:
            valid_until = utc_now() + timedelta(days=coupon.valid_days_after_claim or 0)
        user_coupon_id = prize_coupon_id(win.id, coupon.id)
        await coupons.insert_prize_coupon(
            session,
            id=user_coupon_id,
            coupon_id=coupon.id,
            user_id=win.user_id,
            valid_until=valid_until,
        )
    elif prize.kind == PrizeKind.POINTS.value:
        assert prize.points is not None
        points = await pay_points(session, win_id=win.id, user_id=win.user_id, points=prize.points)
    return await repository.mark_paid(
        session, win_id=win.id, user_coupon_id=user_coupon_id, points=points
    )


async def pay_next(session: AsyncSession, *, lottery_id: int, limit: int) -> int:
    """Pay up to `limit` of the lottery's pending wins (those another runner holds are
    skipped); how many were paid."""
    paid = 0
    for win in await repository.pending_wins(session, lottery_id=lottery_id, limit=limit):
        paid += await pay_win(session, win)
    return paid
