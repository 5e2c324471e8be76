"""queue.lua and queue_load.lua against real Redis (7 and the embedded 6.2): one test per
branch, the admission rate, and the uniform random order at the start (a statistical test
over many shuffles)."""

import asyncio
import itertools
import secrets
from pathlib import Path

from redis.asyncio import Redis

from app.moments import from_ms
from app.store.generations import UNSEEN, Generation
from app.store.queue import (
    ARRIVALS,
    RANDOM_BITS,
    QueueOutcome,
    QueueReply,
    close_queue,
    queue_script_call,
    restore_admission,
    run_queue,
)
from app.store.queue_keys import QueueKeys
from app.store.queue_load import QueuePlaces, QueueTerms, load_queue
from app.store.scripts import Scripts, lua_dir
from app.store.warmup import Build, Built
from tests.support.lua import HOUR_MS, redis_now_ms, sleep_past

GROUP = "writers"


async def open_queue(
    redis: Redis,
    scripts: Scripts,
    keys: QueueKeys,
    *,
    starts_ms: int,
    rate: int = 5,
    ends_ms: int | None = None,
    places: QueuePlaces | None = None,
    opens_ms: int = 0,
    pow_bits: int = 0,
    hidden: bool = False,
) -> Built:
    ends_ms = ends_ms if ends_ms is not None else starts_ms + HOUR_MS
    built = await load_queue(
        redis=redis,
        scripts=scripts,
        keys=keys,
        terms=QueueTerms(
            starts_at=from_ms(starts_ms),
            ends_at=from_ms(ends_ms),
            admit_per_second=rate,
            expires_at=from_ms(ends_ms + HOUR_MS),
            pass_seconds=60,
            item_ids=(11, 12),
            opens_at=from_ms(opens_ms),
            pow_bits=pow_bits,
            hidden=hidden,
        ),
        group=GROUP,
        places=places or QueuePlaces(),
    )
    assert built.written
    return built


async def poll(
    redis: Redis,
    scripts: Scripts,
    keys: QueueKeys,
    user: str,
    *,
    score: int | None = None,
    seen: Generation = UNSEEN,
    pow_zero_bits: int = -1,
    restore: bool = False,
) -> QueueReply:
    return await run_queue(
        redis,
        scripts,
        queue_script_call(
            keys=keys,
            user_id=user,
            score=score,
            seen=seen,
            pow_zero_bits=pow_zero_bits,
            restore=restore,
        ),
    )


async def test_before_the_start_a_place_is_kept_and_its_position_unknown(
    any_redis: Redis, key_prefix: str
) -> None:
    scripts = await Scripts.load(any_redis)
    keys = QueueKeys(key_prefix, 1)
    await open_queue(any_redis, scripts, keys, starts_ms=await redis_now_ms(any_redis) + HOUR_MS)

    joined = await poll(any_redis, scripts, keys, "ann", score=7)
    assert (joined.outcome, joined.rank, joined.admitted_ms) == (QueueOutcome.WAITING, None, None)
    again = await poll(any_redis, scripts, keys, "ann", score=99)  # a repeat keeps the place
    assert again.outcome is QueueOutcome.WAITING
    assert await any_redis.zscore(keys.places, "ann") == 7
    assert again.generation == joined.generation  # nothing written the second time
    assert (await poll(any_redis, scripts, keys, "ann")).outcome is QueueOutcome.WAITING


async def test_not_in_queue_and_no_such_queue(any_redis: Redis, key_prefix: str) -> None:
    scripts = await Scripts.load(any_redis)
    keys = QueueKeys(key_prefix, 2)
    assert (await poll(any_redis, scripts, keys, "ann")).outcome is QueueOutcome.NO_SUCH_QUEUE
    assert not await any_redis.exists(keys.places)
    await open_queue(any_redis, scripts, keys, starts_ms=await redis_now_ms(any_redis) - 1000)
    assert (await poll(any_redis, scripts, keys, "ann")).outcome is QueueOutcome.NOT_IN_QUEUE


async def test_admits_the_rate_in_queue_order_and_records_the_first_admission(
    any_redis: Redis, key_prefix: str
) -> None:
    scripts = await Scripts.load(any_redis)
    keys = QueueKeys(key_prefix, 3)
    starts_ms = await redis_now_ms(any_redis) - 1000  # one second in: 5 admitted at 5/s
    users = [f"u{i}" for i in range(20)]
    await open_queue(
        any_redis,
        scripts,
        keys,
        starts_ms=starts_ms,
        rate=5,
        places=QueuePlaces(places={u: i for i, u in enumerate(users)}),
    )
    replies = [await poll(any_redis, scripts, keys, u) for u in users]
    assert [r.outcome for r in replies[:5]] == [QueueOutcome.ADMITTED_NOW] * 5
    assert all(r.outcome is QueueOutcome.WAITING for r in replies[5:])
    assert [r.rank for r in replies[5:]] == list(range(5, 20))
    assert {r.admitted_count for r in replies[5:]} == {5}

    first = replies[0]
    # The terms come with every answer: a poll needs no other read.
    assert (first.pass_ms, first.admit_per_second, first.item_ids) == (60_000, 5, (11, 12))
    again = await poll(any_redis, scripts, keys, "u0")
    assert again.outcome is QueueOutcome.ADMITTED
    assert again.admitted_ms == first.admitted_ms  # the pass window never moves

    await sleep_past(any_redis, starts_ms + 1400)  # 7 admitted by now
    later = [await poll(any_redis, scripts, keys, u) for u in users[5:9]]
    assert [r.outcome for r in later] == [
        QueueOutcome.ADMITTED_NOW,
        QueueOutcome.ADMITTED_NOW,
        QueueOutcome.WAITING,
        QueueOutcome.WAITING,
    ]
    assert await any_redis.hlen(keys.admitted) == 7


async def test_arrivals_after_the_start_follow_in_arrival_order(
    any_redis: Redis, key_prefix: str
) -> None:
    """After the start (by Redis's clock) the score a join brings is not used: the place
    takes the next arrival number, behind everyone shuffled at the start, exactly (16
    digits: Lua's tostring would keep 14)."""
    scripts = await Scripts.load(any_redis)
    keys = QueueKeys(key_prefix, 4)
    await open_queue(any_redis, scripts, keys, starts_ms=await redis_now_ms(any_redis), rate=1,
                     places=QueuePlaces(places={f"e{i}": i for i in range(3)}))  # fmt: skip
    late = [
        await poll(any_redis, scripts, keys, f"l{i}", score=secrets.randbits(RANDOM_BITS))
        for i in range(3)
    ]
    assert [r.rank for r in late] == [3, 4, 5]
    scores = [await any_redis.zscore(keys.places, f"l{i}") for i in range(3)]
    assert scores == [ARRIVALS + 1, ARRIVALS + 2, ARRIVALS + 3]
    queued = {str(u): str(v) for u, v in (await any_redis.hgetall(keys.queued)).items()}
    assert {u: v.split("|")[0] for u, v in queued.items()} == {
        f"l{i}": str(ARRIVALS + i + 1) for i in range(3)
    }
    early = [await poll(any_redis, scripts, keys, f"e{i}") for i in range(3)]
    assert sorted(r.rank for r in early if r.rank is not None) == [0, 1, 2]


async def test_a_new_place_is_appended_to_the_joins_stream_once(
    any_redis: Redis, key_prefix: str
) -> None:
    """The same call that adds a place appends it for the order writer and marks it
    queued; a repeat join appends nothing."""
    scripts = await Scripts.load(any_redis)
    keys = QueueKeys(key_prefix, 11)
    await open_queue(any_redis, scripts, keys, starts_ms=await redis_now_ms(any_redis) + HOUR_MS)
    joined = await poll(any_redis, scripts, keys, "ann", score=42)
    await poll(any_redis, scripts, keys, "ann", score=43)
    entries = await any_redis.xrange(keys.joins) or []
    assert len(entries) == 1
    fields = {str(k): str(v) for k, v in (entries[0][1] or {}).items()}
    assert (fields["event_id"], fields["user_id"], fields["score"]) == ("11", "ann", "42")
    assert await any_redis.hget(keys.queued, "ann") == f"42|{fields['joined_ms']}"
    assert joined.generation.seq == 1
    groups = await any_redis.xinfo_groups(keys.joins)
    assert [g["name"] for g in groups] == [GROUP]  # the writer's group, made by the load


async def test_a_join_is_refused_before_the_opening_while_hidden_or_without_the_work(
    any_redis: Redis, key_prefix: str
) -> None:
    scripts = await Scripts.load(any_redis)
    now = await redis_now_ms(any_redis)
    later = QueueKeys(key_prefix, 12)
    await open_queue(any_redis, scripts, later, starts_ms=now + HOUR_MS, opens_ms=now + 60_000)
    assert (await poll(any_redis, scripts, later, "ann", score=1)).outcome is QueueOutcome.NOT_OPEN
    hidden = QueueKeys(key_prefix, 13)
    await open_queue(any_redis, scripts, hidden, starts_ms=now + HOUR_MS, hidden=True)
    assert (await poll(any_redis, scripts, hidden, "ann", score=1)).outcome is QueueOutcome.NOT_OPEN
    work = QueueKeys(key_prefix, 14)
    await open_queue(any_redis, scripts, work, starts_ms=now + HOUR_MS, pow_bits=8)
    for bits in (-1, 7):
        refused = await poll(any_redis, scripts, work, "ann", score=1, pow_zero_bits=bits)
        assert (refused.outcome, refused.pow_bits) == (QueueOutcome.CHALLENGE, 8)
    for keys in (later, hidden, work):
        assert await any_redis.zcard(keys.places) == 0
        assert await any_redis.xlen(keys.joins) == 0
    solved = await poll(any_redis, scripts, work, "ann", score=1, pow_zero_bits=9)
    assert solved.outcome is QueueOutcome.WAITING
    assert (await poll(any_redis, scripts, work, "ann")).outcome is QueueOutcome.WAITING  # a look


async def test_a_restore_puts_back_the_stored_score_and_appends_nothing(
    any_redis: Redis, key_prefix: str
) -> None:
    scripts = await Scripts.load(any_redis)
    keys = QueueKeys(key_prefix, 15)
    await open_queue(any_redis, scripts, keys, starts_ms=await redis_now_ms(any_redis) - 10,
                     rate=1, places=QueuePlaces(places={"early": 3}))  # fmt: skip
    back = await poll(any_redis, scripts, keys, "lost", score=2, restore=True)
    assert (back.outcome, back.rank) == (QueueOutcome.WAITING, 0)
    assert await any_redis.zscore(keys.places, "lost") == 2  # not an arrival number
    assert await any_redis.xlen(keys.joins) == 0


async def test_closed_refuses_everyone_still_waiting_but_not_the_admitted(
    any_redis: Redis, key_prefix: str
) -> None:
    scripts = await Scripts.load(any_redis)
    keys = QueueKeys(key_prefix, 5)
    await open_queue(
        any_redis,
        scripts,
        keys,
        starts_ms=await redis_now_ms(any_redis) - 1000,
        rate=1,
        places=QueuePlaces(places={"first": 1, "second": 2}),
    )
    assert (await poll(any_redis, scripts, keys, "first")).outcome is QueueOutcome.ADMITTED_NOW
    await close_queue(any_redis, keys)
    assert (await poll(any_redis, scripts, keys, "second")).outcome is QueueOutcome.CLOSED
    joined = await poll(any_redis, scripts, keys, "late", score=1)
    assert joined.outcome is QueueOutcome.CLOSED
    assert await any_redis.zscore(keys.places, "late") is None  # a closed queue takes nobody
    assert (await poll(any_redis, scripts, keys, "first")).outcome is QueueOutcome.ADMITTED


async def test_ended_closes_for_everyone_still_waiting(any_redis: Redis, key_prefix: str) -> None:
    scripts = await Scripts.load(any_redis)
    keys = QueueKeys(key_prefix, 6)
    now = await redis_now_ms(any_redis)
    await open_queue(
        any_redis,
        scripts,
        keys,
        starts_ms=now - 2000,
        ends_ms=now + 300,
        rate=1,
        places=QueuePlaces(places={"first": 1, "second": 2, "third": 3}),
    )
    assert (await poll(any_redis, scripts, keys, "first")).outcome is QueueOutcome.ADMITTED_NOW
    await sleep_past(any_redis, now + 300)
    assert (await poll(any_redis, scripts, keys, "third")).outcome is QueueOutcome.ENDED
    assert (await poll(any_redis, scripts, keys, "x", score=1)).outcome is QueueOutcome.ENDED
    assert await any_redis.zscore(keys.places, "x") is None
    assert (await poll(any_redis, scripts, keys, "first")).outcome is QueueOutcome.ADMITTED


async def test_frozen_or_behind_answers_recovering(any_redis: Redis, key_prefix: str) -> None:
    scripts = await Scripts.load(any_redis)
    keys = QueueKeys(key_prefix, 7)
    built = await open_queue(
        any_redis, scripts, keys, starts_ms=await redis_now_ms(any_redis) + HOUR_MS
    )
    joined = await poll(any_redis, scripts, keys, "ann", score=1)
    assert joined.generation == Generation(built.epoch, 1)

    behind = await poll(any_redis, scripts, keys, "bob", score=2, seen=Generation(built.epoch, 5))
    assert behind.outcome is QueueOutcome.RECOVERING
    assert await any_redis.hget(keys.queue, "behind") == "1"
    assert await any_redis.zscore(keys.places, "bob") is None  # nothing taken
    frozen = await poll(any_redis, scripts, keys, "ann")
    assert frozen.outcome is QueueOutcome.RECOVERING


async def test_load_builds_once_and_rebuilds_only_while_frozen(
    any_redis: Redis, key_prefix: str
) -> None:
    scripts = await Scripts.load(any_redis)
    keys = QueueKeys(key_prefix, 8)
    now = await redis_now_ms(any_redis)
    terms = QueueTerms(starts_at=from_ms(now - 1000), ends_at=from_ms(now + HOUR_MS),
                       admit_per_second=1, expires_at=from_ms(now + 2 * HOUR_MS),
                       pass_seconds=60, item_ids=(11,), opens_at=from_ms(0), pow_bits=0,
                       hidden=False)  # fmt: skip
    stored = QueuePlaces(places={"ann": 5, "bob": 9}, admitted={"ann": now - 500})

    async def load(build: Build, places: QueuePlaces = stored) -> Built:
        return await load_queue(
            redis=any_redis,
            scripts=scripts,
            keys=keys,
            terms=terms,
            group=GROUP,
            places=places,
            build=build,
        )

    assert (await load(Build.TERMS_ONLY)).loaded == -1
    first = await load(Build.IF_NEVER_BUILT)
    assert first.loaded == 1
    assert await any_redis.zrange(keys.places, 0, -1, withscores=True) == [("ann", 5), ("bob", 9)]
    assert await any_redis.hgetall(keys.admitted) == {"ann": str(now - 500)}
    assert (await load(Build.IF_NEVER_BUILT, QueuePlaces())).loaded == 0  # kept
    assert (await load(Build.REBUILD)).loaded == -2  # not frozen
    await any_redis.zadd(keys.places, {"ghost": 1})
    await any_redis.hset(keys.queue, "frozen", "1")
    rebuilt = await load(Build.REBUILD)
    assert rebuilt.loaded == 1
    assert rebuilt.epoch > first.epoch
    assert await any_redis.zrange(keys.places, 0, -1) == ["ann", "bob"]
    admitted = await poll(any_redis, scripts, keys, "ann")
    assert admitted.outcome is QueueOutcome.RECOVERING  # still frozen: the check unfreezes
    await any_redis.hdel(keys.queue, "frozen")
    admitted = await poll(any_redis, scripts, keys, "ann")
    assert (admitted.outcome, admitted.admitted_ms) == (QueueOutcome.ADMITTED, now - 500)
    assert await any_redis.hget(keys.queue, "arrivals") == "0"

    # Arrivals loaded back: the next one continues after the highest.
    await any_redis.hset(keys.queue, "frozen", "1")
    arrived = QueuePlaces(places={"ann": 5, "a1": ARRIVALS + 1, "a7": ARRIVALS + 7})
    assert (await load(Build.REBUILD, arrived)).loaded == 1
    await any_redis.hdel(keys.queue, "frozen")
    await poll(any_redis, scripts, keys, "next", score=1)
    assert await any_redis.zscore(keys.places, "next") == ARRIVALS + 8


async def test_restore_admission_puts_back_postgres_first_admission(
    redis: Redis, key_prefix: str
) -> None:
    scripts = await Scripts.load(redis)
    keys = QueueKeys(key_prefix, 9)
    await open_queue(redis, scripts, keys, starts_ms=await redis_now_ms(redis) - 5000,
                     places=QueuePlaces(places={"ann": 1}))  # fmt: skip
    await restore_admission(redis, keys, user_id="ann", admitted_ms=123)
    assert (await poll(redis, scripts, keys, "ann")).admitted_ms == 123


async def test_the_keys_expire_a_while_after_the_end(any_redis: Redis, key_prefix: str) -> None:
    """Loaded with an expiry, and the places and admissions a script creates keep to it;
    the joins stream and its marks stay until the order writer has stored them."""
    scripts = await Scripts.load(any_redis)
    keys = QueueKeys(key_prefix, 10)
    now = await redis_now_ms(any_redis)
    await open_queue(any_redis, scripts, keys, starts_ms=now - 1000, ends_ms=now + HOUR_MS)
    assert await poll(any_redis, scripts, keys, "ann", score=0)  # creates the places, admits
    for key in (keys.queue, keys.places, keys.admitted):  # PTTL: 6.2 has no PEXPIRETIME
        assert abs(await any_redis.pttl(key) - 2 * HOUR_MS) < 5_000, key
    for key in (keys.joins, keys.queued):
        assert await any_redis.pttl(key) == -1, key


def test_a_poll_is_one_zrank() -> None:
    """O(log n) a poll: the script finds a place by ZRANK, never by walking the set."""
    source = (Path(lua_dir()) / "queue.lua").read_text()
    body = source.split("]]", 1)[1]
    assert "'ZRANK'" in body
    assert not any(f"'{verb}'" in body for verb in ("ZRANGE", "ZCOUNT", "ZSCAN", "ZRANGEBYSCORE"))


USERS = 4
TRIALS = 2_000


async def test_the_order_at_the_start_is_uniformly_random(redis: Redis, key_prefix: str) -> None:
    """4 shoppers join before the start, 2,000 times over (fresh keys each time), with
    the scores the API draws; at the start each is at each position about 1/4 of the
    time. Fixed tolerance: every cell within 0.05 of 1/4 (about 5 standard deviations),
    and the table's chi-square (9 degrees of freedom) under 40 (p < 1e-5 by chance)."""
    scripts = await Scripts.load(redis)
    now = await redis_now_ms(redis)
    users = [f"user-{i}" for i in range(USERS)]
    counts = dict.fromkeys(itertools.product(users, range(USERS)), 0)

    async def trial(n: int) -> list[int]:
        keys = QueueKeys(key_prefix, 1000 + n)
        await open_queue(redis, scripts, keys, starts_ms=now + HOUR_MS, rate=1)
        for user in users:  # in the same order each time: arrival must not matter
            joined = await poll(redis, scripts, keys, user, score=secrets.randbits(RANDOM_BITS))
            assert joined.rank is None  # secret before the start
        await redis.hset(keys.queue, "starts_ms", now)  # the start
        ranks = [(await poll(redis, scripts, keys, user)).rank for user in users]
        await redis.delete(*keys.all())
        assert all(rank is not None for rank in ranks)
        return [rank for rank in ranks if rank is not None]

    for batch in range(0, TRIALS, 100):
        for ranks in await asyncio.gather(*(trial(n) for n in range(batch, batch + 100))):
            assert sorted(ranks) == list(range(USERS))
            for user, rank in zip(users, ranks, strict=True):
                counts[(user, rank)] += 1

    expected = TRIALS / USERS
    for cell, count in counts.items():
        assert abs(count / TRIALS - 1 / USERS) < 0.05, (cell, count)
    chi_square = sum((count - expected) ** 2 / expected for count in counts.values())
    assert chi_square < 40, chi_square
