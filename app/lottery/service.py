"""Lotteries (docs/CONTRACT.md "Members, reminders, points, invites, lottery"). Never
commits: the request's session owns the transaction.

A draw is decided in Redis alone, as a purchase is (lottery_draw.lua): the user's draws
of the day are counted (one more after a check-in that day), a prize is picked by weight
with a random number from this process's CSPRNG, its unit taken, and the draw (won or
not) appended to the lottery's draws stream in the same call; the order writer stores it
in Postgres (app/flows/writer.py) with its win, once. A lottery Redis lacks is loaded
from Postgres on the first draw that finds it missing (once built, a missing one was lost:
`recovering` until the hot-store check rebuilds it, app/flows/freshness.py).

The draw's odds: a prize is landed on with chance weight / (no_prize_weight + every
prize's weight). A prize out of stock keeps its share and a draw landing on it wins
nothing: no prize's chance grows because another ran out.

Days are counted in `business_timezone`. Item prizes wait for an operator: approved, the
win is paid (fulfilled by hand); rejected, it is never paid and its unit does not return
to the pool (the pool only shrinks, so no crowd can be given more than `quantity`).
"""

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit_log import service as audit_log
from app.auth import User
from app.container import Container
from app.coupons import repository as coupons
from app.db import SessionOf, after_commit
from app.errors import InvalidState, Recovering, ValidationFailed
from app.generations import repository as generations
from app.jobs import repository as jobs
from app.jobs.models import Job, JobKind
from app.lottery import repository
from app.lottery.errors import (
    AlreadyCheckedIn,
    DrawsUsedUp,
    LotteryEnded,
    LotteryNotFound,
    LotteryNotStarted,
    PrizeNotFound,
)
from app.lottery.loading import (
    LOTTERIES,
    Catalogue,
    business_day,
    day_keys_expire_at,
    keys_of,
    load_from_postgres,
)
from app.lottery.models import Lottery, LotteryPrize, LotteryWin, WinStatus
from app.lottery.schemas import (
    CheckInRead,
    DrawnPrize,
    DrawRead,
    LotteryCreate,
    LotteryRead,
    PrizeRead,
    WonPrizeRead,
)
from app.moments import utc_now
from app.store.freezes import FROZEN_RETRY_AFTER_SECONDS
from app.store.lottery import DrawOutcome, draw_script_call, random_pick, run_draw
from app.store.lottery_load import mark_checked_in
from app.store.order_ids import new_draw_id
from app.store.warmup import Build

# A lottery Redis lacks is loaded by one request at a time (a lock that outlives a dead
# loader by this long); the others look again this often, this many times in all.
LOAD_LOCK_MS = 30_000
LOAD_WAIT_SECONDS = 0.05
LOAD_ATTEMPTS = 40


def _recovering() -> Recovering:
    return Recovering(
        "The lottery is being rebuilt; nothing was drawn.",
        retry_after_seconds=FROZEN_RETRY_AFTER_SECONDS,
    )


# -- creating and reading -------------------------------------------------------------


async def create_lottery(
    *, session: AsyncSession, services: Container, data: LotteryCreate
) -> LotteryRead:
    if len(data.prizes) > services.settings.lottery_max_prizes:
        raise ValidationFailed(
            f"at most {services.settings.lottery_max_prizes} prizes.", field="prizes"
        )
    wanted = {p.coupon_id for p in data.prizes if p.coupon_id is not None}
    known = await coupons.get_coupons(session, wanted)
    for index, prize in enumerate(data.prizes):
        if prize.coupon_id is not None and prize.coupon_id not in known:
            raise ValidationFailed(
                f"no coupon {prize.coupon_id}.", field=f"prizes.{index}.coupon_id"
            )
    lottery = Lottery(
        name=data.name,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        draws_per_user_per_day=data.draws_per_user_per_day,
        no_prize_weight=data.no_prize_weight,
        prizes=[
            LotteryPrize(
                position=index,
                name=p.name,
                kind=p.kind.value,
                coupon_id=p.coupon_id,
                points=p.points,
                quantity=p.quantity,
                weight=p.weight,
            )
            for index, p in enumerate(data.prizes)
        ],
    )
    await repository.insert_lottery(session, lottery)
    return _read(Catalogue.of(lottery), lottery.name)


def _read(catalogue: Catalogue, name: str) -> LotteryRead:
    return LotteryRead(
        id=catalogue.id,
        name=name,
        starts_at=catalogue.starts_at,
        ends_at=catalogue.ends_at,
        draws_per_user_per_day=catalogue.draws_per_user_per_day,
        no_prize_weight=catalogue.no_prize_weight,
        prizes=list(catalogue.prizes.values()),
    )


async def get_lottery(*, session: AsyncSession, lottery_id: int) -> LotteryRead:
    lottery = await repository.get_lottery(session, lottery_id)
    if lottery is None:
        raise LotteryNotFound(f"No lottery {lottery_id}.")
    return _read(Catalogue.of(lottery), lottery.name)


async def catalogue(*, session_of: SessionOf, services: Container, lottery_id: int) -> Catalogue:
    """The lottery's terms and prizes: from this process's memory after the first read."""
    known = services.lotteries.get(lottery_id)
    if isinstance(known, Catalogue):
        return known
    lottery = await repository.get_lottery(session_of(), lottery_id)
    if lottery is None:
        raise LotteryNotFound(f"No lottery {lottery_id}.")
    found = Catalogue.of(lottery)
    services.lotteries[lottery_id] = found
    return found


# -- drawing ----------------------------------------------------------------------------


async def draw(
    *, session_of: SessionOf, services: Container, lottery_id: int, user: User
) -> DrawRead:
    """One draw for the user (see the module's docstring). Postgres is asked only the
    first time this process sees the lottery, or when Redis lacks it."""
    lottery = await catalogue(session_of=session_of, services=services, lottery_id=lottery_id)
    now = utc_now()
    if now < lottery.starts_at:
        raise LotteryNotStarted(f"Lottery {lottery_id} starts at {lottery.starts_at.isoformat()}.")
    if now >= lottery.ends_at:
        raise LotteryEnded(f"Lottery {lottery_id} ended at {lottery.ends_at.isoformat()}.")
    day = business_day(services.settings, now)
    keys = keys_of(services, lottery_id)
    draw_id = new_draw_id(lottery_id)
    for _attempt in range(LOAD_ATTEMPTS):
        reply = await run_draw(
            services.redis,
            services.scripts,
            draw_script_call(
                keys=keys,
                user_id=user.id,
                draw_id=draw_id,
                day=day,
                day_expires_at=day_keys_expire_at(services.settings, day),
                pick=random_pick(),
                seen=services.lottery_generations.known(lottery_id),
            ),
            services.lottery_batches,
        )
        if reply.outcome is not DrawOutcome.NO_SUCH_LOTTERY:
            break
        await _load_missing(session_of(), services, lottery)
    else:
        raise _recovering()
    services.lottery_generations.saw(lottery_id, reply.generation)
    match reply.outcome:
        case DrawOutcome.WON:
            assert reply.prize_id is not None
            prize = lottery.prizes[reply.prize_id]
            return DrawRead(prize=DrawnPrize(**prize.model_dump(), win_id=draw_id))
        case DrawOutcome.NO_WIN:
            return DrawRead(prize=None)
        case DrawOutcome.NOT_STARTED:
            raise LotteryNotStarted(f"Lottery {lottery_id} has not started.")
        case DrawOutcome.ENDED:
            raise LotteryEnded(f"Lottery {lottery_id} has ended.")
        case DrawOutcome.LIMIT_EXCEEDED:
            raise DrawsUsedUp(
                f"No draws left today in lottery {lottery_id} (a check-in adds one a day)."
            )
        case _:
            raise _recovering()


async def _load_missing(session: AsyncSession, services: Container, lottery: Catalogue) -> None:
    """Load a lottery never built into Redis, once: one request loads it while the others
    of the crowd that found it missing wait a moment. One built before and missing now was
    lost with draws that may not be stored yet: the hot-store check rebuilds it (and
    freezes it, as a sale), so this answers `recovering`."""
    keys = keys_of(services, lottery.id)
    if not await services.redis.set(keys.loading, "1", nx=True, px=LOAD_LOCK_MS):
        await asyncio.sleep(LOAD_WAIT_SECONDS)
        return
    try:
        if await services.redis.hexists(keys.lottery, "epoch"):
            return  # loaded by the one before
        if await generations.built_epochs(session, LOTTERIES, [lottery.id]):
            raise _recovering()
        built = await load_from_postgres(
            session=session, services=services, catalogue=lottery, build=Build.IF_NEVER_BUILT
        )
    finally:
        await services.redis.delete(keys.loading)
    if built.written:
        await generations.record_built(session, LOTTERIES, {lottery.id: built.epoch})


# -- check-in ---------------------------------------------------------------------------


async def check_in(*, session: AsyncSession, services: Container, user: User) -> CheckInRead:
    """Today's check-in (once a day, 409 `invalid_state` the second time): one more draw
    today in every lottery. Postgres holds it; after the commit every open lottery's Redis
    is told (a lottery loaded or rebuilt later reads it from Postgres). A repeat tells
    Redis again before its 409: if Redis failed after the first one's commit, the retry
    is what brings the stored check-in's draw back."""
    now = utc_now()
    day = business_day(services.settings, now)
    streak = await repository.check_in(session, user_id=user.id, day=day)
    lottery_ids = await repository.lottery_ids_not_ended(session, now=now)

    async def mark() -> None:
        await mark_checked_in(
            services.redis,
            [keys_of(services, i) for i in lottery_ids],
            user_id=user.id,
            day=day,
            expires_at=day_keys_expire_at(services.settings, day),
        )

    if streak is None:
        await mark()  # a flag: marking what Redis has changes nothing
        raise AlreadyCheckedIn(f"{user.id} checked in on {day.isoformat()} already.")
    after_commit(session, mark)
    return CheckInRead(day=day, streak=streak)


# -- won prizes -------------------------------------------------------------------------


def _won(win: LotteryWin) -> WonPrizeRead:
    return WonPrizeRead(
        id=win.id,
        lottery_id=win.lottery_id,
        prize=PrizeRead.model_validate(win.prize, from_attributes=True),
        status=WinStatus(win.status),
        won_at=win.won_at,
        paid_at=win.paid_at,
    )


async def my_prizes(
    *, session: AsyncSession, user: User, limit: int, offset: int
) -> list[WonPrizeRead]:
    """The user's stored wins, newest first (a win the writer has not stored yet shows
    a moment later)."""
    wins = await repository.wins_of_user(session, user_id=user.id, limit=limit, offset=offset)
    return [_won(win) for win in wins]


async def decide_item(
    *, session: AsyncSession, win_id: str, actor: User, approve: bool
) -> WonPrizeRead:
    """An operator approves (the item is fulfilled: paid) or rejects a won item, once."""
    win = await repository.win_for_update(session, win_id)
    if win is None:
        raise PrizeNotFound(f"No won prize {win_id}.")
    if win.status != WinStatus.PENDING_APPROVAL.value:
        raise InvalidState(f"Won prize {win_id} is {win.status}, not pending_approval.")
    before = win.status
    if approve:
        win.status, win.paid_at = WinStatus.PAID.value, utc_now()
    else:
        win.status = WinStatus.REJECTED.value
    win.decided_by = actor.id
    await session.flush()
    await audit_log.record(
        session=session,
        actor=actor,
        action="lottery.prize.approve" if approve else "lottery.prize.reject",
        target=f"lottery_win:{win_id}",
        before={"status": before},
        after={"status": win.status},
    )
    return _won(win)


async def start_payout(*, session: AsyncSession, lottery_id: int, actor: User) -> Job:
    """A payout job for the lottery's wins waiting to be paid now (coupons and points);
    the worker runs it (app/flows/lottery_payouts.py). Items are paid by approval."""
    if await repository.get_lottery(session, lottery_id) is None:
        raise LotteryNotFound(f"No lottery {lottery_id}.")
    total = await repository.count_pending(session, lottery_id)
    job = await jobs.insert_job(
        session,
        kind=JobKind.LOTTERY_PAYOUT.value,
        payload={"lottery_id": lottery_id},
        total=total,
    )
    assert job is not None  # no Idempotency-Key: never a conflict
    await audit_log.record(
        session=session,
        actor=actor,
        action="lottery.payout",
        target=f"lottery:{lottery_id}",
        after={"job_id": job.id, "wins": total},
    )
    return job
