"""lottery_draw.lua and lottery_load.lua against real Redis (7 and the embedded 6.2): one
test per branch, plus a concurrent crowd."""

import asyncio

from redis.asyncio import Redis

from app.flows.dead_letters import stream_entries
from app.redis import as_text
from app.store.freezes import freeze
from app.store.generations import Generation
from app.store.lottery import DrawOutcome
from app.store.lottery_keys import LotteryKeys
from app.store.records import parse_draw, parse_queued_draw
from app.store.scripts import Scripts
from app.store.warmup import Build
from tests.support.lottery import DAY, LuaLottery, open_lottery
from tests.support.lua import MINUTE_MS, redis_now_ms, sleep_past, wider_client


async def test_won_taken_and_recorded(any_redis: Redis, key_prefix: str) -> None:
    lottery = await open_lottery(any_redis, key_prefix, left={1: 3, 2: 3})
    reply = await lottery.draw("u1", pick=0)
    assert (reply.outcome, reply.prize_id) == (DrawOutcome.WON, 1)
    assert reply.generation.seq == 1
    assert await lottery.left() == {1: 2, 2: 3}
    assert await any_redis.hgetall(lottery.keys.drawn(DAY)) == {"u1": "1"}
    entries = stream_entries(await any_redis.xrange(lottery.keys.draws))
    record = parse_draw(entries[0][1])
    assert record is not None
    assert (record.lottery_id, record.user_id, record.day, record.prize_id) == (4, "u1", DAY, 1)
    queued = as_text(await any_redis.hget(lottery.keys.queued, record.id))
    assert queued is not None
    assert parse_queued_draw(record.id, 4, queued) == record


async def test_the_pick_falls_in_the_prizes_bands_in_order(
    any_redis: Redis, key_prefix: str
) -> None:
    lottery = await open_lottery(
        any_redis, key_prefix, weights=((1, 2), (2, 3)), left={1: 9, 2: 9}, per_day=9
    )
    # Bands: prize 1 [0, 2), prize 2 [2, 5); the pick is taken modulo the total (5).
    won = [(await lottery.draw(pick=pick)).prize_id for pick in (0, 1, 2, 4, 5, 7)]
    assert won == [1, 1, 2, 2, 1, 2]


async def test_no_win_past_the_prizes_bands(any_redis: Redis, key_prefix: str) -> None:
    lottery = await open_lottery(any_redis, key_prefix, weights=((1, 1),), no_win=3, per_day=9)
    replies = [await lottery.draw(pick=pick) for pick in range(4)]
    assert [r.outcome for r in replies] == [DrawOutcome.WON] + [DrawOutcome.NO_WIN] * 3
    # A draw that wins nothing is counted and recorded all the same.
    assert await any_redis.hget(lottery.keys.drawn(DAY), "u1") == "4"
    entries = stream_entries(await any_redis.xrange(lottery.keys.draws))
    assert [parse_draw(fields).prize_id for _id, fields in entries] == [1, None, None, None]  # type: ignore[union-attr]


async def test_a_prize_out_of_stock_keeps_its_band_and_wins_nothing(
    any_redis: Redis, key_prefix: str
) -> None:
    lottery = await open_lottery(any_redis, key_prefix, left={1: 0, 2: 5})
    reply = await lottery.draw(pick=0)
    assert (reply.outcome, reply.prize_id) == (DrawOutcome.NO_WIN, None)
    assert await lottery.left() == {1: 0, 2: 5}


async def test_all_weights_zero_win_nothing(any_redis: Redis, key_prefix: str) -> None:
    lottery = await open_lottery(any_redis, key_prefix, weights=((1, 0),), left={1: 5})
    assert (await lottery.draw()).outcome is DrawOutcome.NO_WIN


async def test_no_such_lottery(any_redis: Redis, key_prefix: str) -> None:
    lottery = LuaLottery(any_redis, await Scripts.load(any_redis), LotteryKeys(key_prefix, 9))
    assert (await lottery.draw()).outcome is DrawOutcome.NO_SUCH_LOTTERY
    assert await any_redis.exists(lottery.keys.draws) == 0


async def test_not_started_and_ended(any_redis: Redis, key_prefix: str) -> None:
    now = await redis_now_ms(any_redis)
    early = await open_lottery(any_redis, key_prefix, starts_ms=now + MINUTE_MS)
    assert (await early.draw()).outcome is DrawOutcome.NOT_STARTED
    ends_ms = now + 50
    late = await open_lottery(any_redis, key_prefix, starts_ms=now - MINUTE_MS, ends_ms=ends_ms)
    await sleep_past(any_redis, ends_ms)
    assert (await late.draw()).outcome is DrawOutcome.ENDED
    assert await late.left() == {1: 1, 2: 1}


async def test_limit_per_day_and_one_more_after_a_check_in(
    any_redis: Redis, key_prefix: str
) -> None:
    lottery = await open_lottery(
        any_redis, key_prefix, left={1: 9, 2: 9}, per_day=2, drawn={"u1": 1}, checked_in=["u2"]
    )
    assert (await lottery.draw("u1")).outcome is DrawOutcome.WON
    assert (await lottery.draw("u1")).outcome is DrawOutcome.LIMIT_EXCEEDED
    # Another day is another count.
    assert (await lottery.draw("u1", day=DAY.replace(day=7))).outcome is DrawOutcome.WON
    outcomes = [(await lottery.draw("u2")).outcome for _ in range(4)]
    assert outcomes == [DrawOutcome.WON] * 3 + [DrawOutcome.LIMIT_EXCEEDED]


async def test_frozen_takes_nothing(any_redis: Redis, key_prefix: str) -> None:
    lottery = await open_lottery(any_redis, key_prefix)
    await freeze(any_redis, [lottery.keys.lottery])
    assert (await lottery.draw()).outcome is DrawOutcome.RECOVERING
    assert await lottery.left() == {1: 1, 2: 1}
    assert await any_redis.exists(lottery.keys.draws, lottery.keys.drawn(DAY)) == 1  # stream


async def test_behind_what_a_process_saw_freezes(any_redis: Redis, key_prefix: str) -> None:
    lottery = await open_lottery(any_redis, key_prefix, left={1: 5, 2: 5})
    first = await lottery.draw()
    ahead = Generation(first.generation.epoch, first.generation.seq + 1)
    assert (await lottery.draw(seen=ahead)).outcome is DrawOutcome.RECOVERING
    assert await any_redis.hmget(lottery.keys.lottery, ["frozen", "behind"]) == ["1", "1"]
    assert (await lottery.draw()).outcome is DrawOutcome.RECOVERING


async def test_load_builds_once_and_rebuilds_only_while_frozen(
    any_redis: Redis, key_prefix: str
) -> None:
    now = await redis_now_ms(any_redis)
    lottery = await open_lottery(any_redis, key_prefix, left={1: 5, 2: 5})
    starts_ms, ends_ms = now - MINUTE_MS, now + MINUTE_MS
    weights = ((1, 1), (2, 1))
    kept = await lottery.load(
        weights=weights, left={1: 1, 2: 1}, starts_ms=starts_ms, ends_ms=ends_ms
    )
    assert kept.loaded == 0
    assert await lottery.left() == {1: 5, 2: 5}
    refused = await lottery.load(
        weights=weights,
        left={1: 1, 2: 1},
        build=Build.REBUILD,
        starts_ms=starts_ms,
        ends_ms=ends_ms,
    )
    assert refused.loaded == -2
    await freeze(any_redis, [lottery.keys.lottery])
    rebuilt = await lottery.load(
        weights=weights, left={1: 1, 2: 0}, drawn={"u1": 2}, build=Build.REBUILD,
        min_epoch=kept.epoch + 10_000_000, starts_ms=starts_ms, ends_ms=ends_ms,
    )  # fmt: skip
    assert (rebuilt.loaded, rebuilt.epoch > kept.epoch + 10_000_000) == (1, True)
    assert await lottery.left() == {1: 1, 2: 0}
    assert await any_redis.hgetall(lottery.keys.drawn(DAY)) == {"u1": "2"}
    # Still frozen: only the hot-store check (or an operator) lifts it.
    assert (await lottery.draw("u2")).outcome is DrawOutcome.RECOVERING


async def test_a_missing_lottery_frozen_is_not_built(any_redis: Redis, key_prefix: str) -> None:
    lottery = LuaLottery(any_redis, await Scripts.load(any_redis), LotteryKeys(key_prefix, 4))
    await freeze(any_redis, [lottery.keys.lottery])
    now = await redis_now_ms(any_redis)
    built = await lottery.load(
        weights=((1, 1),), left={1: 1}, starts_ms=now - MINUTE_MS, ends_ms=now + MINUTE_MS
    )
    assert built.loaded == -1
    assert (await lottery.draw()).outcome is DrawOutcome.RECOVERING


async def test_a_crowd_never_wins_more_than_the_stock(any_redis: Redis, key_prefix: str) -> None:
    weights = tuple((prize_id, 1) for prize_id in range(1, 9))
    lottery = await open_lottery(any_redis, key_prefix, weights=weights, per_day=5)
    crowd = wider_client(any_redis, 300)
    try:
        replies = await asyncio.gather(
            *(lottery.draw(f"u{i % 60}", redis=crowd) for i in range(300))
        )
    finally:
        await crowd.aclose()
    outcomes = [r.outcome for r in replies]
    assert outcomes.count(DrawOutcome.WON) == 8
    assert sorted(r.prize_id for r in replies if r.prize_id is not None) == list(range(1, 9))
    assert outcomes.count(DrawOutcome.NO_WIN) == 292
    assert await lottery.left() == dict.fromkeys(range(1, 9), 0)
    assert await any_redis.xlen(lottery.keys.draws) == 300
