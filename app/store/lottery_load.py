"""lottery_load.lua's typed wrapper: loading a lottery's terms, counters and recent
check-ins from Postgres into Redis."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from app.moments import to_ms
from app.redis import RedisClient
from app.store.lottery_keys import LotteryKeys, lotteries_registry
from app.store.scripts import ScriptCall, Scripts
from app.store.warmup import Build, Built, parse_warmup_reply


@dataclass(frozen=True, slots=True)
class LotteryTerms:
    """What lottery_draw.lua decides on, as Postgres holds it."""

    starts_at: datetime
    ends_at: datetime
    draws_per_user_per_day: int
    no_prize_weight: int
    weights: Sequence[tuple[int, int]]  # (prize id, weight) in the lottery's order


@dataclass(frozen=True, slots=True)
class LotteryDay:
    """One day's draws per user and check-ins, and when the day's keys expire."""

    day: date
    expires_at: datetime
    drawn: Mapping[str, int] = field(default_factory=dict)
    checked_in: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class LotteryCounters:
    left: Mapping[int, int] = field(default_factory=dict)  # prize id -> units left
    days: Sequence[LotteryDay] = ()


def lottery_load_script_call(
    *,
    keys: LotteryKeys,
    terms: LotteryTerms,
    group: str,
    counters: LotteryCounters,
    build: Build = Build.IF_NEVER_BUILT,
    min_epoch: int = 0,
) -> ScriptCall:
    """lottery_load.lua's KEYS and ARGV (see the script's header)."""
    args: list[str | int] = [
        to_ms(terms.starts_at),
        to_ms(terms.ends_at),
        terms.draws_per_user_per_day,
        terms.no_prize_weight,
        ",".join(f"{prize_id}:{weight}" for prize_id, weight in terms.weights),
        build.value,
        min_epoch,
        group,
        len(counters.left),
    ]
    for prize_id, left in counters.left.items():
        args += [prize_id, left]
    args.append(len(counters.days))
    script_keys = [keys.lottery, keys.stock, keys.draws]
    for day in counters.days:
        script_keys += [keys.drawn(day.day), keys.checked_in(day.day)]
        args += [to_ms(day.expires_at), len(day.drawn)]
        for user_id, count in day.drawn.items():
            args += [user_id, count]
        args.append(len(day.checked_in))
        args += list(day.checked_in)
    return script_keys, args


async def load_lottery(
    *,
    redis: RedisClient,
    scripts: Scripts,
    keys: LotteryKeys,
    terms: LotteryTerms,
    group: str,
    counters: LotteryCounters,
    build: Build = Build.IF_NEVER_BUILT,
    min_epoch: int = 0,
) -> Built:
    """Put a lottery into Redis: its terms, and its counters as `build` says (above
    `min_epoch`, Postgres's newest generation of them); `group`: the order writer's."""
    script_keys, script_args = lottery_load_script_call(
        keys=keys,
        terms=terms,
        group=group,
        counters=counters,
        build=build,
        min_epoch=min_epoch,
    )
    built = parse_warmup_reply(
        await scripts.lottery_load(keys=script_keys, args=script_args, client=redis)
    )
    if built.loaded >= 0:
        # The order writer discovers draws streams through this set.
        await redis.sadd(lotteries_registry(keys.prefix), keys.lottery_id)
    return built


async def mark_checked_in(
    redis: RedisClient,
    keys: Sequence[LotteryKeys],
    *,
    user_id: str,
    day: date,
    expires_at: datetime,
) -> None:
    """A check-in gives one more draw that day in every lottery of `keys` (a flag: marking
    twice is marking once; a lottery loaded later reads it from Postgres)."""
    if not keys:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for lottery in keys:
            pipe.hset(lottery.checked_in(day), user_id, "1")
            pipe.pexpireat(lottery.checked_in(day), to_ms(expires_at))
        await pipe.execute()
