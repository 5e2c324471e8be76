from typing import Annotated

from fastapi import APIRouter, Path, status

from app.auth import AdminUser, CurrentUser
from app.container import ContainerDep
from app.db import SessionDep, SessionOfDep
from app.errors import (
    Forbidden,
    InvalidState,
    Recovering,
    Unauthorized,
    ValidationFailed,
    problem_responses,
)
from app.ids import MAX_ID
from app.jobs.schemas import JobRead
from app.lottery import service
from app.lottery.errors import (
    AlreadyCheckedIn,
    DrawsUsedUp,
    LotteryEnded,
    LotteryNotFound,
    LotteryNotStarted,
    PrizeNotFound,
)
from app.lottery.schemas import CheckInRead, DrawRead, LotteryCreate, LotteryRead, WonPrizeRead
from app.pagination import PageDep

public = APIRouter(prefix="/api/v1", tags=["lottery"])
admin = APIRouter(prefix="/api/v1/admin", tags=["lottery (admin)"])

LotteryId = Annotated[int, Path(ge=1, le=MAX_ID)]
# A won prize's id is its draw's: a ULID, `-` and the lottery id.
WinId = Annotated[
    str, Path(min_length=1, max_length=64, pattern="^[0-9A-HJKMNP-TV-Z]{26}-[0-9]{1,19}$")
]
AUTH_PROBLEMS = (Unauthorized, Forbidden)


@admin.post(
    "/lotteries",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(*AUTH_PROBLEMS, ValidationFailed),
)
async def create_lottery(
    data: LotteryCreate, session: SessionDep, services: ContainerDep, _: AdminUser
) -> LotteryRead:
    """Create a lottery: prizes of kind coupon, points or item, each with its quantity and
    weight. A draw lands on a prize with chance weight / (no_prize_weight + every prize's
    weight); a prize out of stock keeps its share, and landing on it wins nothing."""
    return await service.create_lottery(session=session, services=services, data=data)


@admin.get("/lotteries/{lottery_id}", responses=problem_responses(*AUTH_PROBLEMS, LotteryNotFound))
async def get_lottery(lottery_id: LotteryId, session: SessionDep, _: AdminUser) -> LotteryRead:
    return await service.get_lottery(session=session, lottery_id=lottery_id)


@admin.post(
    "/lotteries/{lottery_id}/payouts",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(*AUTH_PROBLEMS, LotteryNotFound),
)
async def start_payout(lottery_id: LotteryId, session: SessionDep, actor: AdminUser) -> JobRead:
    """Pay the lottery's won coupons and points as a job with progress (GET
    /admin/jobs/{id}); the worker runs it. Each win is paid once, however often asked."""
    job = await service.start_payout(session=session, lottery_id=lottery_id, actor=actor)
    return JobRead.model_validate(job)


@public.post(
    "/lotteries/{lottery_id}/draw",
    responses=problem_responses(
        Unauthorized, LotteryNotFound, LotteryNotStarted, LotteryEnded, DrawsUsedUp, Recovering
    ),
)
async def draw(
    lottery_id: LotteryId, session_of: SessionOfDep, services: ContainerDep, user: CurrentUser
) -> DrawRead:
    """One draw: `{"prize": {...}}` won, `{"prize": null}` not. 409 `limit_exceeded` past
    the day's draws (draws_per_user_per_day, one more after today's check-in)."""
    return await service.draw(
        session_of=session_of, services=services, lottery_id=lottery_id, user=user
    )


@public.post("/me/check-in", responses=problem_responses(Unauthorized, AlreadyCheckedIn))
async def check_in(session: SessionDep, services: ContainerDep, user: CurrentUser) -> CheckInRead:
    """Today's check-in (once a day): one more draw today in every lottery; `streak` counts
    the days in a row."""
    return await service.check_in(session=session, services=services, user=user)


@public.get("/me/prizes", responses=problem_responses(Unauthorized))
async def my_prizes(session: SessionDep, user: CurrentUser, page: PageDep) -> list[WonPrizeRead]:
    return await service.my_prizes(session=session, user=user, limit=page.limit, offset=page.offset)


@admin.post(
    "/prizes/{win_id}/approve",
    responses=problem_responses(*AUTH_PROBLEMS, PrizeNotFound, InvalidState),
)
async def approve_prize(win_id: WinId, session: SessionDep, actor: AdminUser) -> WonPrizeRead:
    """Approve a won item prize: it is fulfilled (paid)."""
    return await service.decide_item(session=session, win_id=win_id, actor=actor, approve=True)


@admin.post(
    "/prizes/{win_id}/reject",
    responses=problem_responses(*AUTH_PROBLEMS, PrizeNotFound, InvalidState),
)
async def reject_prize(win_id: WinId, session: SessionDep, actor: AdminUser) -> WonPrizeRead:
    """Reject a won item prize: never paid; its unit does not return to the pool."""
    return await service.decide_item(session=session, win_id=win_id, actor=actor, approve=False)
