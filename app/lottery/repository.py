"""Every SQL statement on lotteries, prizes, draws, wins and check-ins."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.lottery.models import CheckIn, Lottery, LotteryDraw, LotteryPrize, LotteryWin, WinStatus
from app.store.records import NewDraw


async def insert_lottery(session: AsyncSession, lottery: Lottery) -> Lottery:
    session.add(lottery)
    await session.flush()
    return lottery


async def get_lottery(session: AsyncSession, lottery_id: int) -> Lottery | None:
    return await session.get(Lottery, lottery_id)


async def lotteries_not_ended(session: AsyncSession, *, now: datetime) -> Sequence[Lottery]:
    rows = await session.scalars(select(Lottery).where(Lottery.ends_at > now).order_by(Lottery.id))
    return rows.all()


async def lottery_ids_not_ended(session: AsyncSession, *, now: datetime) -> list[int]:
    rows = await session.scalars(select(Lottery.id).where(Lottery.ends_at > now))
    return list(rows.all())


# -- draws (the order writer stores them) ---------------------------------------------

_INSERT_DRAWS = text(
    """
    WITH new AS (
        INSERT INTO lottery_draws (id, lottery_id, user_id, day, prize_id, drawn_at)
        SELECT * FROM unnest(
            CAST(:ids AS text[]), CAST(:lottery_ids AS bigint[]), CAST(:user_ids AS text[]),
            CAST(:days AS date[]), CAST(:prize_ids AS bigint[]),
            CAST(:drawn_ats AS timestamptz[])
        )
        ON CONFLICT (id) DO NOTHING
        RETURNING id, lottery_id, user_id, prize_id, drawn_at
    ), wins AS (
        INSERT INTO lottery_wins (id, lottery_id, prize_id, user_id, status, won_at)
        SELECT new.id, new.lottery_id, new.prize_id, new.user_id,
               CASE WHEN p.kind = 'item' THEN 'pending_approval' ELSE 'pending' END,
               new.drawn_at
        FROM new JOIN lottery_prizes p ON p.id = new.prize_id
        RETURNING id
    )
    SELECT count(*) FROM new
    """
)


async def insert_draws(session: AsyncSession, draws: Sequence[NewDraw]) -> int:
    """Store draws (each with its win, if any) once: a draw stored before is skipped
    (the writer re-reads an entry whose ack was lost). Returns how many were new."""
    if not draws:
        return 0
    count = await session.scalar(
        _INSERT_DRAWS,
        {
            "ids": [d.id for d in draws],
            "lottery_ids": [d.lottery_id for d in draws],
            "user_ids": [d.user_id for d in draws],
            "days": [d.day for d in draws],
            "prize_ids": [d.prize_id for d in draws],
            "drawn_ats": [d.drawn_at for d in draws],
        },
    )
    return int(count or 0)


async def newest_draws(session: AsyncSession, lottery_ids: list[int]) -> dict[int, datetime]:
    """When each lottery's newest stored draw was made (the hot-store check's)."""
    if not lottery_ids:
        return {}
    rows = await session.execute(
        select(LotteryDraw.lottery_id, func.max(LotteryDraw.drawn_at))
        .where(LotteryDraw.lottery_id.in_(lottery_ids))
        .group_by(LotteryDraw.lottery_id)
    )
    return {int(i): at for i, at in rows}


async def stored_draw_ids(session: AsyncSession, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    rows = await session.scalars(select(LotteryDraw.id).where(LotteryDraw.id.in_(list(ids))))
    return set(rows.all())


async def wins_by_prize(session: AsyncSession, lottery_id: int) -> dict[int, int]:
    rows = await session.execute(
        select(LotteryDraw.prize_id, func.count())
        .where(LotteryDraw.lottery_id == lottery_id, LotteryDraw.prize_id.is_not(None))
        .group_by(LotteryDraw.prize_id)
    )
    return {int(prize_id or 0): int(count) for prize_id, count in rows}


async def draws_by_user(
    session: AsyncSession, lottery_id: int, days: Sequence[date]
) -> dict[date, dict[str, int]]:
    rows = await session.execute(
        select(LotteryDraw.day, LotteryDraw.user_id, func.count())
        .where(LotteryDraw.lottery_id == lottery_id, LotteryDraw.day.in_(list(days)))
        .group_by(LotteryDraw.day, LotteryDraw.user_id)
    )
    counts: dict[date, dict[str, int]] = {day: {} for day in days}
    for day, user_id, count in rows:
        counts[day][user_id] = int(count)
    return counts


# -- check-ins --------------------------------------------------------------------------

_CHECK_IN = text(
    """
    WITH arg AS (SELECT CAST(:user_id AS varchar) AS user_id, CAST(:day AS date) AS day)
    INSERT INTO check_ins (user_id, day, streak)
    SELECT arg.user_id, arg.day, COALESCE(
        (SELECT c.streak FROM check_ins c WHERE c.user_id = arg.user_id AND c.day = arg.day - 1),
        0) + 1
    FROM arg
    ON CONFLICT (user_id, day) DO NOTHING
    RETURNING streak
    """
)


async def check_in(session: AsyncSession, *, user_id: str, day: date) -> int | None:
    """The user's check-in of `day` and its streak; None if they checked in already."""
    streak = await session.scalar(_CHECK_IN, {"user_id": user_id, "day": day})
    return None if streak is None else int(streak)


async def checked_in_users(session: AsyncSession, days: Sequence[date]) -> dict[date, list[str]]:
    rows = await session.execute(
        select(CheckIn.day, CheckIn.user_id).where(CheckIn.day.in_(list(days)))
    )
    users: dict[date, list[str]] = {day: [] for day in days}
    for day, user_id in rows:
        users[day].append(user_id)
    return users


# -- wins and payouts -------------------------------------------------------------------


async def wins_of_user(
    session: AsyncSession, *, user_id: str, limit: int, offset: int
) -> Sequence[LotteryWin]:
    rows = await session.scalars(
        select(LotteryWin)
        .where(LotteryWin.user_id == user_id)
        .order_by(LotteryWin.won_at.desc(), LotteryWin.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return rows.all()


async def win_for_update(session: AsyncSession, win_id: str) -> LotteryWin | None:
    return await session.scalar(
        select(LotteryWin).where(LotteryWin.id == win_id).with_for_update(of=LotteryWin)
    )


async def count_pending(session: AsyncSession, lottery_id: int) -> int:
    count = await session.scalar(
        select(func.count()).where(
            LotteryWin.lottery_id == lottery_id, LotteryWin.status == WinStatus.PENDING.value
        )
    )
    return int(count or 0)


async def pending_wins(
    session: AsyncSession, *, lottery_id: int, limit: int
) -> Sequence[LotteryWin]:
    """The next wins to pay, locked; those another runner holds are skipped."""
    rows = await session.scalars(
        select(LotteryWin)
        .where(LotteryWin.lottery_id == lottery_id, LotteryWin.status == WinStatus.PENDING.value)
        .order_by(LotteryWin.id)
        .limit(limit)
        .with_for_update(of=LotteryWin, skip_locked=True)
    )
    return rows.all()


_MARK_PAID = text(
    """
    UPDATE lottery_wins SET status = 'paid', paid_at = now(),
        user_coupon_id = :user_coupon_id, points_paid = :points
    WHERE id = :id AND status = 'pending'
    """
)


async def mark_paid(
    session: AsyncSession, *, win_id: str, user_coupon_id: str | None, points: int | None
) -> bool:
    """Pending -> paid, once: False if it was not pending (paid already)."""
    result = await session.execute(
        _MARK_PAID, {"id": win_id, "user_coupon_id": user_coupon_id, "points": points}
    )
    return bool(getattr(result, "rowcount", 0))


# -- the dashboard and the report -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrizeFigures:
    prize_id: int
    name: str
    kind: str
    quantity: int
    won: int
    paid: int
    pending_approval: int


@dataclass(frozen=True, slots=True)
class LotteryFigures:
    lottery_id: int
    draws: int
    drawers: int
    prizes: list[PrizeFigures]


async def lottery_figures(session: AsyncSession, lottery_id: int) -> LotteryFigures:
    draws, drawers = (
        await session.execute(
            select(func.count(), func.count(func.distinct(LotteryDraw.user_id))).where(
                LotteryDraw.lottery_id == lottery_id
            )
        )
    ).one()
    rows = await session.execute(
        select(
            LotteryPrize.id,
            LotteryPrize.name,
            LotteryPrize.kind,
            LotteryPrize.quantity,
            func.count(LotteryWin.id),
            func.count(LotteryWin.id).filter(LotteryWin.status == WinStatus.PAID.value),
            func.count(LotteryWin.id).filter(LotteryWin.status == WinStatus.PENDING_APPROVAL.value),
        )
        .outerjoin(LotteryWin, LotteryWin.prize_id == LotteryPrize.id)
        .where(LotteryPrize.lottery_id == lottery_id)
        .group_by(LotteryPrize.id)
        .order_by(LotteryPrize.position)
    )
    return LotteryFigures(
        lottery_id=lottery_id,
        draws=int(draws),
        drawers=int(drawers),
        prizes=[PrizeFigures(*row) for row in rows],
    )
