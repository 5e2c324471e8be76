"""A Redis that lost or rolled back a waiting room: rebuilt from Postgres and the places
still queued for the writer, with the same scores (the same positions) and the same
admissions (the same passes), whether the call that finds it missing loads it or the
hot-store check (app/flows/freshness.py) does; one that may have lost answered places
stays frozen for the operator, as a sale does."""

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import event as sqlalchemy_event

from app.container import Container
from app.flows.freshness import QUEUES, Verdict, check_once, recover
from app.moments import to_ms
from app.store.freezes import FROZEN_WHY
from app.store.queue_keys import QueueKeys
from tests.support.factories import Auth, assert_problem
from tests.support.lifecycle import rebuild_and_resume, store_orders
from tests.support.queues import create_queue_event, join, places, sleep_past, state

USERS = [f"shopper-{i}" for i in range(20)]


async def everyone(client: httpx.AsyncClient, auth: Auth, event_id: int) -> dict[str, Any]:
    return {u: await state(client, auth, event_id, u) for u in USERS}


def positions(states: dict[str, Any]) -> dict[str, int]:
    return {u: s["position"] for u, s in states.items() if s["state"] == "waiting"}


def assert_same_positions(before: dict[str, int], after: dict[str, int]) -> None:
    """Everyone waiting both times is at the same position (some may be in meanwhile)."""
    assert {u: p for u, p in after.items() if u in before} == {
        u: p for u, p in before.items() if u in after
    }


async def started_queue(client: httpx.AsyncClient, auth: Auth, services: Container) -> int:
    """20 joined before the start, one admitted a second (none yet); the order writer has
    stored the places."""
    event = await create_queue_event(
        client, auth, starts_in=timedelta(seconds=1), admit_per_second=1
    )
    for user in USERS:
        assert (await join(client, auth, event.id, user)).status_code == 200
    await store_orders(services)
    await sleep_past(services.redis, to_ms(event.starts_at) + 20)
    return event.id


async def test_a_lost_queue_answers_recovering_until_rebuilt_with_the_same_order(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """Lost with places that may not have been stored: never loaded again by a call (as a
    sale, only the hot-store check rebuilds it, and keeps it frozen for the operator)."""
    event_id = await started_queue(client, auth, app_services)
    before = positions(await everyone(client, auth, event_id))
    assert sorted(before.values())[1:] == list(range(2, 21))  # the first may be in by now

    keys = QueueKeys(app_services.settings.redis_key_prefix, event_id)
    await app_services.redis.delete(*keys.all())  # Redis lost the queue
    for call in (
        client.get(f"/api/v1/events/{event_id}/queue", headers=auth.headers(USERS[0])),
        join(client, auth, event_id, "newcomer"),
    ):
        assert_problem(await call, 503, "recovering")
    found = await rebuild_and_resume(app_services)
    assert [(f.entity_id, f.verdict) for f in found if f.family == QUEUES.name] == [
        (event_id, Verdict.UNLOADED)
    ]
    after = positions(await everyone(client, auth, event_id))
    assert_same_positions(before, after)
    assert len(after) >= 19


async def test_an_admission_survives_the_loss_of_the_queue(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_queue_event(
        client, auth, starts_in=timedelta(seconds=1), admit_per_second=1
    )
    for user in ("ann", "bob"):
        assert (await join(client, auth, event.id, user)).status_code == 200
    await sleep_past(app_services.redis, to_ms(event.starts_at) + 1050)
    states = {u: await state(client, auth, event.id, u) for u in ("ann", "bob")}
    winner = next(u for u, s in states.items() if s["state"] == "admitted")
    first_pass = states[winner]["pass"]
    keys = QueueKeys(app_services.settings.redis_key_prefix, event.id)
    admitted_ms = await app_services.redis.hget(keys.admitted, winner)

    # A rollback that lost the admission only: admitted again now, and Postgres's first
    # admission wins, in the answer and in Redis: the same place is not admitted twice.
    await app_services.redis.hdel(keys.admitted, winner)
    assert (await state(client, auth, event.id, winner))["pass"] == first_pass
    assert await app_services.redis.hget(keys.admitted, winner) == admitted_ms

    await store_orders(app_services)
    await app_services.redis.delete(*keys.all())  # the whole queue lost
    await rebuild_and_resume(app_services)
    assert (await state(client, auth, event.id, winner))["pass"] == first_pass


async def test_a_rolled_back_queue_is_frozen_then_rebuilt_by_the_hot_store_check(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event_id = await started_queue(client, auth, app_services)
    before = positions(await everyone(client, auth, event_id))
    keys = QueueKeys(app_services.settings.redis_key_prefix, event_id)
    # Redis comes back from an older snapshot: its sequence is behind what this process saw
    # (and a place is gone from it).
    await app_services.redis.hset(keys.queue, "seq", 0)
    await app_services.redis.zrem(keys.places, USERS[5])
    response = await client.get(f"/api/v1/events/{event_id}/queue", headers=auth.headers(USERS[0]))
    assert_problem(response, 503, "recovering")

    # Places may have been answered since the snapshot: frozen until the operator resumes.
    found = [f for f in await check_once(app_services) if f.family == QUEUES.name]
    assert [(f.entity_id, f.verdict) for f in found] == [(event_id, Verdict.ROLLED_BACK)]
    assert await app_services.redis.hget(keys.queue, "frozen") == "1"
    assert "rolled_back" in (await app_services.redis.hget(keys.queue, FROZEN_WHY) or "")
    prefix = app_services.settings.redis_key_prefix
    assert await recover(app_services.redis, prefix, QUEUES, event_id)  # `seckill recover`
    after = positions(await everyone(client, auth, event_id))
    assert_same_positions(before, after)
    assert (USERS[5] in after) == (USERS[5] in before)  # the lost place is back


async def test_a_crowd_that_finds_a_queue_never_loaded_reads_postgres_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """The first joins of an event whose queue no process has loaded yet: one of them
    loads it, the others wait for it."""
    event = await create_queue_event(client, auth)
    loads: list[str] = []

    def count(*args: Any) -> None:
        if "FROM queue_places" in str(args[2]) and "ORDER BY" in str(args[2]):
            loads.append(str(args[2]))

    engine = app_services.engine.sync_engine
    sqlalchemy_event.listen(engine, "before_cursor_execute", count)
    try:
        joins = await asyncio.gather(*(join(client, auth, event.id, u) for u in USERS))
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", count)
    assert {j.status_code for j in joins} == {200}
    assert len(loads) == 1


async def test_places_not_stored_yet_come_back_from_the_queued_marks(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """A rebuild while the writer is behind: the places only the `queued` hash holds are
    put back with their scores, next to those Postgres stores, and the writer stores them
    afterwards exactly once."""
    event_id = await started_queue(client, auth, app_services)  # 20 stored
    late = [f"late-{i}" for i in range(5)]
    for user in late:  # after the start: arrivals 1..5, not stored yet
        assert (await join(client, auth, event_id, user)).status_code == 200
    before = positions(await everyone(client, auth, event_id))
    keys = QueueKeys(app_services.settings.redis_key_prefix, event_id)
    await app_services.redis.delete(keys.queue, keys.places)  # the sorted set lost
    found = await rebuild_and_resume(app_services)
    assert [(f.entity_id, f.verdict) for f in found if f.family == QUEUES.name] == [
        (event_id, Verdict.UNLOADED)
    ]
    after = positions(await everyone(client, auth, event_id))
    assert_same_positions(before, after)
    late_positions = [after[u] for u in late if u in after]
    assert late_positions == sorted(late_positions)  # still in arrival order
    stored = await places(app_services, event_id)
    assert sorted(stored) == sorted(USERS + late)
    # A new arrival continues after the last one put back.
    assert (await join(client, auth, event_id, "later")).status_code == 200
    stored = await places(app_services, event_id)
    assert stored["later"] == max(stored[u] for u in late) + 1
