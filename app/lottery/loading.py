"""A lottery in Redis: its days, its terms and counters loaded from Postgres, rebuilt
after a fault (app/flows/freshness.py `Lotteries`).

Redis holds each prize's units left and each user's draws of the day; Postgres holds
every draw (won or not) once the order writer stored it, and every draw not stored yet
is in the lottery's `queued` hash. A rebuild reads the queued draws first, then one
snapshot of Postgres, and counts each draw once (by its id), so no unit is given twice
and nobody draws more than their day allows."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.container import Container
from app.generations import repository as generations
from app.generations.service import publish_counters, remember_built
from app.lottery import repository
from app.lottery.models import Lottery
from app.lottery.schemas import PrizeRead
from app.moments import utc_now
from app.store.lottery_keys import LotteryKeys
from app.store.lottery_load import LotteryCounters, LotteryDay, LotteryTerms, load_lottery
from app.store.records import NewDraw, parse_queued_draw
from app.store.warmup import Build, Built

LOTTERIES = "lotteries"  # the counter family of a lottery's counters (app/generations)


def business_day(settings: Settings, at: datetime) -> date:
    """The day `at` falls on in `business_timezone`: draws per day and check-ins count it."""
    return at.astimezone(ZoneInfo(settings.business_timezone)).date()


def day_keys_expire_at(settings: Settings, day: date) -> datetime:
    """A day's Redis keys live until the end of the next day (the day before is loaded
    with today's: a draw near midnight may be counted on either side)."""
    zone = ZoneInfo(settings.business_timezone)
    return datetime.combine(day + timedelta(days=2), time(), tzinfo=zone)


def recent_days(settings: Settings, now: datetime) -> list[date]:
    today = business_day(settings, now)
    return [today - timedelta(days=1), today]


@dataclass(frozen=True, slots=True)
class Catalogue:
    """What a draw needs of its lottery, read once per process (never changes)."""

    id: int
    starts_at: datetime
    ends_at: datetime
    draws_per_user_per_day: int
    no_prize_weight: int
    prizes: dict[int, PrizeRead]

    @classmethod
    def of(cls, lottery: Lottery) -> "Catalogue":
        return cls(
            id=lottery.id,
            starts_at=lottery.starts_at,
            ends_at=lottery.ends_at,
            draws_per_user_per_day=lottery.draws_per_user_per_day,
            no_prize_weight=lottery.no_prize_weight,
            prizes={
                p.id: PrizeRead.model_validate(p, from_attributes=True) for p in lottery.prizes
            },
        )

    @property
    def terms(self) -> LotteryTerms:
        return LotteryTerms(
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            draws_per_user_per_day=self.draws_per_user_per_day,
            no_prize_weight=self.no_prize_weight,
            weights=[(p.id, p.weight) for p in self.prizes.values()],
        )


def keys_of(services: Container, lottery_id: int) -> LotteryKeys:
    return LotteryKeys(services.settings.redis_key_prefix, lottery_id)


async def _counters(
    session: AsyncSession, services: Container, catalogue: Catalogue, days: Sequence[date]
) -> LotteryCounters:
    """Units left and draws per user, from the queued draws (read first) and Postgres."""
    keys = keys_of(services, catalogue.id)
    queued: list[NewDraw] = []
    for draw_id, value in (await services.redis.hgetall(keys.queued)).items():
        if (draw := parse_queued_draw(str(draw_id), catalogue.id, str(value))) is not None:
            queued.append(draw)
    # Postgres after the queued draws (a rebuild's snapshot begins here).
    won = await repository.wins_by_prize(session, catalogue.id)
    drawn = await repository.draws_by_user(session, catalogue.id, days)
    stored = await repository.stored_draw_ids(session, [d.id for d in queued])
    for draw in queued:
        if draw.id in stored:
            continue
        if draw.prize_id is not None:
            won[draw.prize_id] = won.get(draw.prize_id, 0) + 1
        if draw.day in drawn:
            drawn[draw.day][draw.user_id] = drawn[draw.day].get(draw.user_id, 0) + 1
    return LotteryCounters(
        left={p.id: max(0, p.quantity - won.get(p.id, 0)) for p in catalogue.prizes.values()},
        days=[
            LotteryDay(day=day, expires_at=day_keys_expire_at(services.settings, day),
                       drawn=drawn[day])
            for day in days
        ],
    )  # fmt: skip


async def load_from_postgres(
    *,
    session: AsyncSession,
    services: Container,
    catalogue: Catalogue,
    build: Build,
    min_epoch: int = 0,
) -> Built:
    """Load the lottery's terms, the recent days' check-ins and, as `build` says, its
    counters. The caller remembers the generation built (app/generations)."""
    days = recent_days(services.settings, utc_now())
    if build is Build.TERMS_ONLY:
        counters = LotteryCounters(
            days=[
                LotteryDay(day=day, expires_at=day_keys_expire_at(services.settings, day))
                for day in days
            ]
        )
    else:
        counters = await _counters(session, services, catalogue, days)
    checked_in = await repository.checked_in_users(session, days)
    counters = LotteryCounters(
        left=counters.left,
        days=[
            LotteryDay(
                day=day.day, expires_at=day.expires_at, drawn=day.drawn,
                checked_in=checked_in[day.day],
            )
            for day in counters.days
        ],
    )  # fmt: skip
    return await load_lottery(
        redis=services.redis,
        scripts=services.scripts,
        keys=keys_of(services, catalogue.id),
        terms=catalogue.terms,
        group=services.settings.worker_group,
        counters=counters,
        build=build,
        min_epoch=min_epoch,
    )


async def publish_lotteries(
    *, session: AsyncSession, services: Container, lotteries: Sequence[Lottery]
) -> None:
    """Load lotteries never built (and refresh the terms of the others); one built before
    and missing is frozen here, for the hot-store check to rebuild."""
    by_id = {lottery.id: Catalogue.of(lottery) for lottery in lotteries}

    async def load(lottery_id: int, build: Build) -> Built:
        return await load_from_postgres(
            session=session, services=services, catalogue=by_id[lottery_id], build=build
        )

    await publish_counters(
        session=session,
        sessionmaker=services.sessionmaker,
        redis=services.redis,
        family=LOTTERIES,
        ids=list(by_id),
        load=load,
        hash_key=lambda lottery_id: keys_of(services, lottery_id).lottery,
    )


async def rebuild_lottery(*, services: Container, lottery: Lottery) -> Built:
    """Replace a frozen lottery's counters with those Postgres and the queued draws hold,
    in a new generation above every one Postgres remembers."""
    async with services.sessionmaker() as session:
        newest = (await generations.built_epochs(session, LOTTERIES, [lottery.id])).get(
            lottery.id, 0
        )
    async with services.sessionmaker() as session:
        # One snapshot of Postgres, begun by its first read, after the queued draws are
        # read (_counters): a draw the writer commits meanwhile is in one of them.
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        built = await load_from_postgres(
            session=session,
            services=services,
            catalogue=Catalogue.of(lottery),
            build=Build.REBUILD,
            min_epoch=newest,
        )
    if built.written:
        await remember_built(services.sessionmaker, LOTTERIES, {lottery.id: built.epoch})
    return built


async def lotteries_not_ended(*, session: AsyncSession) -> list[Lottery]:
    """Every lottery whose window has not closed (the hot-store check's)."""
    return list(await repository.lotteries_not_ended(session, now=utc_now()))


async def newest_draws(*, session: AsyncSession, lottery_ids: list[int]) -> dict[int, datetime]:
    """Each lottery's newest stored draw (the hot-store check's)."""
    return await repository.newest_draws(session, lottery_ids)
