"""promotion.lua, promotion_release.lua and promotion_warmup.lua against real Redis (7 and
the embedded 6.2): one test per branch, plus a concurrent crowd."""

import asyncio
from dataclasses import dataclass
from datetime import date

from redis.asyncio import Redis
from redis.crc import key_slot

from app.moments import from_ms
from app.store.generations import UNSEEN, Generation
from app.store.promotion import (
    PromotionOutcome,
    PromotionReply,
    promotion_script_call,
    run_promotion,
)
from app.store.promotion_keys import PromotionKeys
from app.store.promotion_release import (
    PromotionReleaseReply,
    promotion_release_script_call,
    run_promotion_release,
)
from app.store.promotion_warmup import (
    DayHolders,
    PromotionTerms,
    load_promotion,
    promotion_warmup_script_call,
)
from app.store.scripts import Scripts
from app.store.warmup import Build, Built
from tests.support.lua import HOUR_MS, MINUTE_MS, redis_now_ms, sleep_past, wider_client

DAY = date(2026, 12, 6)
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class LuaPromotion:
    redis: Redis
    scripts: Scripts
    keys: PromotionKeys
    expires_ms: int

    async def take(
        self,
        user_id: str = "u1",
        order_id: str = "o1",
        *,
        day: date = DAY,
        seen: Generation = UNSEEN,
        take: bool = True,
        redis: Redis | None = None,
    ) -> PromotionReply:
        call = promotion_script_call(
            keys=self.keys,
            day=day,
            expires_at=from_ms(self.expires_ms),
            user_id=user_id,
            order_id=order_id,
            seen=seen,
            take=take,
        )
        return await run_promotion(redis or self.redis, self.scripts, call)

    async def give_back(self, order_id: str, *, day: date = DAY) -> PromotionReleaseReply:
        call = promotion_release_script_call(keys=self.keys, day=day, order_id=order_id)
        return await run_promotion_release(self.redis, self.scripts, call)

    async def taken(self, day: date = DAY) -> int:
        return int(await self.redis.get(self.keys.day(day).taken) or 0)

    async def load(
        self,
        *,
        daily_limit: int = 3,
        per_user: int = 1,
        held: bool = False,
        starts_ms: int | None = None,
        ends_ms: int | None = None,
        holders: dict[str, str] | None = None,
        build: Build = Build.IF_NEVER_BUILT,
        min_epoch: int = 0,
    ) -> Built:
        now = await redis_now_ms(self.redis)
        return await load_promotion(
            redis=self.redis,
            scripts=self.scripts,
            keys=self.keys,
            terms=PromotionTerms(
                promotion_id=self.keys.promotion_id,
                starts_at=from_ms(now - MINUTE_MS if starts_ms is None else starts_ms),
                ends_at=from_ms(now + HOUR_MS if ends_ms is None else ends_ms),
                daily_limit=daily_limit,
                per_user_daily_limit=per_user,
                held=held,
            ),
            days=[DayHolders(day=DAY, expires_at=from_ms(self.expires_ms), holders=holders or {})],
            build=build,
            min_epoch=min_epoch,
        )


async def promotion(redis: Redis, prefix: str, **load: object) -> LuaPromotion:
    now = await redis_now_ms(redis)
    lua = LuaPromotion(redis, await Scripts.load(redis), PromotionKeys(prefix, 4), now + DAY_MS)
    built = await lua.load(**load)  # type: ignore[arg-type]
    assert built.written
    return lua


async def test_taken_recorded_and_expiring(any_redis: Redis, key_prefix: str) -> None:
    lua = await promotion(any_redis, key_prefix)
    reply = await lua.take("u1", "o1")
    assert (reply.outcome, reply.taken, reply.generation.seq) == (PromotionOutcome.TAKEN, 1, 1)
    day = lua.keys.day(DAY)
    assert await any_redis.hgetall(day.users) == {"u1": "1"}
    assert await any_redis.hgetall(day.holders) == {"o1": "u1"}
    for key in day.all():
        # PTTL, not PEXPIRETIME: Redis 6.2 has no such command.
        left = lua.expires_ms - await redis_now_ms(any_redis)
        assert left - MINUTE_MS <= await any_redis.pttl(key) <= left + 1


async def test_a_quote_decides_and_takes_nothing(any_redis: Redis, key_prefix: str) -> None:
    lua = await promotion(any_redis, key_prefix, daily_limit=1)
    assert (await lua.take(take=False)).outcome is PromotionOutcome.TAKEN
    assert await lua.taken() == 0
    await lua.take("u1", "o1")
    assert (await lua.take("u2", "", take=False)).outcome is PromotionOutcome.EXHAUSTED


async def test_replayed_for_an_order_holding_a_place(any_redis: Redis, key_prefix: str) -> None:
    lua = await promotion(any_redis, key_prefix, per_user=1)
    await lua.take("u1", "o1")
    assert (await lua.take("u1", "o1")).outcome is PromotionOutcome.REPLAYED
    assert await lua.taken() == 1


async def test_no_such_promotion(any_redis: Redis, key_prefix: str) -> None:
    lua = LuaPromotion(any_redis, await Scripts.load(any_redis), PromotionKeys(key_prefix, 9), 0)
    assert (await lua.take()).outcome is PromotionOutcome.NO_SUCH_PROMOTION


async def test_window_on_redis_clock(any_redis: Redis, key_prefix: str) -> None:
    now = await redis_now_ms(any_redis)
    later = await promotion(any_redis, key_prefix, starts_ms=now + HOUR_MS)
    assert (await later.take()).outcome is PromotionOutcome.NOT_STARTED
    await any_redis.delete(later.keys.promotion)
    closing = await promotion(any_redis, key_prefix, ends_ms=now + 50)
    await sleep_past(any_redis, now + 50)
    assert (await closing.take()).outcome is PromotionOutcome.ENDED
    assert await closing.taken() == 0


async def test_held_until_its_campaign_is_approved(any_redis: Redis, key_prefix: str) -> None:
    lua = await promotion(any_redis, key_prefix, held=True)
    assert (await lua.take()).outcome is PromotionOutcome.HELD
    assert (await lua.take(take=False)).outcome is PromotionOutcome.HELD
    assert await lua.taken() == 0
    # Approval re-applies the terms (counters kept), and places are given.
    assert (await lua.load(held=False, build=Build.TERMS_ONLY)).loaded == 0
    assert (await lua.take()).outcome is PromotionOutcome.TAKEN


async def test_per_user_daily_limit(any_redis: Redis, key_prefix: str) -> None:
    lua = await promotion(any_redis, key_prefix, daily_limit=5, per_user=2)
    assert (await lua.take("u1", "o1")).outcome is PromotionOutcome.TAKEN
    assert (await lua.take("u1", "o2")).outcome is PromotionOutcome.TAKEN
    assert (await lua.take("u1", "o3")).outcome is PromotionOutcome.LIMIT_EXCEEDED
    # Another day is another count.
    assert (await lua.take("u1", "o4", day=date(2026, 12, 7))).outcome is PromotionOutcome.TAKEN


async def test_exhausted_for_the_day(any_redis: Redis, key_prefix: str) -> None:
    lua = await promotion(any_redis, key_prefix, daily_limit=2)
    await lua.take("u1", "o1")
    await lua.take("u2", "o2")
    reply = await lua.take("u3", "o3")
    assert (reply.outcome, reply.taken) == (PromotionOutcome.EXHAUSTED, 2)


async def test_frozen_takes_nothing(any_redis: Redis, key_prefix: str) -> None:
    lua = await promotion(any_redis, key_prefix)
    await any_redis.hset(lua.keys.promotion, "frozen", "1")
    assert (await lua.take()).outcome is PromotionOutcome.RECOVERING
    assert await lua.taken() == 0


async def test_behind_what_a_process_saw_freezes(any_redis: Redis, key_prefix: str) -> None:
    lua = await promotion(any_redis, key_prefix)
    first = await lua.take("u1", "o1")
    ahead = Generation(first.generation.epoch, first.generation.seq + 5)
    assert (await lua.take("u2", "o2", seen=ahead)).outcome is PromotionOutcome.RECOVERING
    assert await any_redis.hmget(lua.keys.promotion, ["frozen", "behind"]) == ["1", "1"]
    assert await lua.taken() == 1


async def test_give_back_once(any_redis: Redis, key_prefix: str) -> None:
    lua = await promotion(any_redis, key_prefix, daily_limit=1)
    await lua.take("u1", "o1")
    assert (await lua.give_back("o1")) == PromotionReleaseReply(given_back=True, taken=0)
    assert (await lua.give_back("o1")) == PromotionReleaseReply(given_back=False, taken=0)
    assert await any_redis.hgetall(lua.keys.day(DAY).users) == {}
    assert (await lua.take("u1", "o2")).outcome is PromotionOutcome.TAKEN


async def test_give_back_of_an_order_that_held_nothing(any_redis: Redis, key_prefix: str) -> None:
    lua = await promotion(any_redis, key_prefix)
    await lua.take("u1", "o1")
    assert (await lua.give_back("o9")) == PromotionReleaseReply(given_back=False, taken=1)


async def test_warmup_keeps_live_counters_and_terms_only_needs_them(
    any_redis: Redis, key_prefix: str
) -> None:
    lua = await promotion(any_redis, key_prefix, daily_limit=3)
    await lua.take("u1", "o1")
    again = await lua.load(daily_limit=4, holders={})
    assert again.loaded == 0  # counters exist: kept
    assert await lua.taken() == 1
    assert await any_redis.hget(lua.keys.promotion, "daily_limit") == "4"
    other = LuaPromotion(any_redis, lua.scripts, PromotionKeys(key_prefix, 5), lua.expires_ms)
    assert (await other.load(build=Build.TERMS_ONLY)).loaded == -1
    assert await any_redis.exists(other.keys.promotion) == 0


async def test_rebuild_only_while_frozen_in_a_newer_generation(
    any_redis: Redis, key_prefix: str
) -> None:
    lua = await promotion(any_redis, key_prefix, daily_limit=3)
    first = await lua.take("u1", "o1")
    refused = await lua.load(holders={"o7": "u7"}, build=Build.REBUILD)
    assert refused.loaded == -2
    assert await lua.taken() == 1
    await any_redis.hset(lua.keys.promotion, "frozen", "1")
    rebuilt = await lua.load(
        holders={"o7": "u7", "o8": "u7"}, build=Build.REBUILD, min_epoch=first.generation.epoch + 10
    )
    assert rebuilt.loaded == 1
    assert rebuilt.epoch > first.generation.epoch + 10
    day = lua.keys.day(DAY)
    assert await lua.taken() == 2
    assert await any_redis.hgetall(day.holders) == {"o7": "u7", "o8": "u7"}
    assert await any_redis.hgetall(day.users) == {"u7": "2"}
    # Still frozen: the hot-store check resumes it.
    assert (await lua.take()).outcome is PromotionOutcome.RECOVERING


async def test_a_lost_promotion_frozen_is_not_built_by_a_warmup(
    any_redis: Redis, key_prefix: str
) -> None:
    lua = LuaPromotion(any_redis, await Scripts.load(any_redis), PromotionKeys(key_prefix, 6), 0)
    await any_redis.hset(lua.keys.promotion, "frozen", "1")
    assert (await lua.load()).loaded == -1
    assert (await lua.take()).outcome is PromotionOutcome.RECOVERING


async def test_a_crowd_takes_exactly_the_daily_limit(any_redis: Redis, key_prefix: str) -> None:
    lua = await promotion(any_redis, key_prefix, daily_limit=20, per_user=1)
    crowd = wider_client(any_redis, 300)
    try:
        replies = await asyncio.gather(
            *(lua.take(f"u{n % 150}", f"o{n}", redis=crowd) for n in range(300))
        )
    finally:
        await crowd.aclose()
    taken = [r for r in replies if r.outcome is PromotionOutcome.TAKEN]
    assert len(taken) == 20
    assert sorted(r.taken for r in taken) == list(range(1, 21))
    users = await any_redis.hgetall(lua.keys.day(DAY).users)
    assert sum(int(v) for v in users.values()) == 20
    assert all(v == "1" for v in users.values())


def test_every_call_passes_keys_of_one_slot() -> None:
    keys = PromotionKeys("sk", 42)
    days = [DAY, date(2026, 12, 7)]
    take_keys, _ = promotion_script_call(
        keys=keys, day=DAY, expires_at=from_ms(0), user_id="u", order_id="o"
    )
    release_keys, _ = promotion_release_script_call(keys=keys, day=DAY, order_id="o")
    warmup_keys, _ = promotion_warmup_script_call(
        keys=keys,
        terms=PromotionTerms(
            promotion_id=42,
            starts_at=from_ms(0),
            ends_at=from_ms(1),
            daily_limit=1,
            per_user_daily_limit=1,
            held=False,
        ),
        days=[DayHolders(day=d, expires_at=from_ms(0)) for d in days],
    )
    assert len(warmup_keys) == 1 + 3 * len(days)
    for passed in (take_keys, release_keys, warmup_keys):
        assert {key_slot(k.encode()) for k in passed} == {key_slot(b"promotion:42")}
