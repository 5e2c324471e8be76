"""The waiting room over HTTP (docs/CONTRACT.md, "Fair access for hyped sales"): joining
(repeat-safe, under a crowd), the refusals, admission with a pass bound to user and event,
and the close when the event sells out or ends."""

import asyncio
from datetime import timedelta
from typing import Any, cast

import httpx
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import select

from app.access import passes
from app.access.gate import challenge_of
from app.access.passes import pass_secret
from app.access.pow import solve
from app.access.queue_models import QueuePlace
from app.container import Container
from app.moments import to_ms, utc_now
from app.store.queue import ARRIVALS
from app.store.queue_keys import QueueKeys
from tests.support.factories import Auth, assert_problem, buy, create_event, item_spec
from tests.support.lua import redis_now_ms
from tests.support.queues import create_queue_event, join, places, sleep_past, state


async def test_join_before_the_start_waits_with_no_position_and_is_repeat_safe(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_queue_event(client, auth)
    first = await join(client, auth, event.id, "ann")
    assert first.status_code == 200, first.text
    assert first.json() == {"state": "waiting"}
    again = await join(client, auth, event.id, "ann")
    assert again.json() == {"state": "waiting"}
    assert await state(client, auth, event.id, "ann") == {"state": "waiting"}

    stored = await places(app_services, event.id)
    assert list(stored) == ["ann"]
    assert 0 <= stored["ann"] < ARRIVALS  # a secret random score, drawn before the start
    keys = QueueKeys(app_services.settings.redis_key_prefix, event.id)
    assert await app_services.redis.zscore(keys.places, "ann") == stored["ann"]


async def test_refusals(client: httpx.AsyncClient, auth: Auth) -> None:
    event = await create_queue_event(client, auth, opens_in=timedelta(minutes=10))
    assert_problem(await join(client, auth, event.id, "ann"), 409, "not_started")
    open_sale = await create_event(client, auth, items=[item_spec(sku="OPEN-1")])
    assert_problem(await join(client, auth, open_sale.id, "ann"), 409, "invalid_state")
    assert_problem(await join(client, auth, 999_999, "ann"), 404, "not_found")
    response = await client.post(f"/api/v1/events/{event.id}/queue")
    assert_problem(response, 401, "unauthorized")

    started = await create_queue_event(client, auth, items=[item_spec(sku="Q-2")])
    response = await client.get(f"/api/v1/events/{started.id}/queue", headers=auth.headers("x"))
    assert_problem(response, 404, "not_found")  # holds no place


async def test_proof_of_work_on_join(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_queue_event(client, auth, pow_bits=8)
    assert_problem(await join(client, auth, event.id, "ann"), 403, "challenge_required")
    assert_problem(await join(client, auth, event.id, "ann", pow_nonce="x"), 403,
                   "challenge_required")  # fmt: skip
    assert await places(app_services, event.id) == {}  # nothing taken on a refusal
    challenge = challenge_of(app_services.settings, event.id)
    nonce = solve(challenge=challenge, user_id="ann", bits=8)
    assert (await join(client, auth, event.id, "ann", pow_nonce=nonce)).status_code == 200
    # Bound to the user: another's solution is not this one's.
    assert_problem(await join(client, auth, event.id, "bob", pow_nonce=nonce), 403,
                   "challenge_required")  # fmt: skip


async def test_a_crowd_of_repeated_joins_holds_one_place_each(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_queue_event(client, auth)
    users = [f"shopper-{i}" for i in range(200)]
    crowd = users + users[:100]  # 300 joins of 200 users, at once
    responses = await asyncio.gather(*(join(client, auth, event.id, u) for u in crowd))
    assert {r.status_code for r in responses} == {200}
    stored = await places(app_services, event.id)
    assert sorted(stored) == sorted(users)
    keys = QueueKeys(app_services.settings.redis_key_prefix, event.id)
    assert await app_services.redis.zcard(keys.places) == 200
    in_redis = await app_services.redis.zrange(keys.places, 0, -1, withscores=True)
    assert {str(u): int(s) for u, s in cast(list[tuple[str, float]], in_redis)} == stored


async def test_arrivals_after_the_start_follow_in_arrival_order(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_queue_event(client, auth, starts_in=timedelta(seconds=-1))
    for user in ("ann", "bob", "cid"):
        assert (await join(client, auth, event.id, user)).status_code == 200
    stored = await places(app_services, event.id)
    assert ARRIVALS <= stored["ann"] < stored["bob"] < stored["cid"]


async def test_a_join_the_api_thought_early_but_redis_late_becomes_an_arrival(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_queue_event(client, auth)
    assert (await join(client, auth, event.id, "ann")).status_code == 200
    keys = QueueKeys(app_services.settings.redis_key_prefix, event.id)
    # Redis's clock (admission's) is past the start, this process's is not.
    await app_services.redis.hset(keys.queue, "starts_ms", await redis_now_ms(app_services.redis))
    bob = await join(client, auth, event.id, "bob")
    assert (bob.json()["state"], bob.json()["position"]) == ("waiting", 2)
    stored = await places(app_services, event.id)
    assert stored["ann"] < ARRIVALS <= stored["bob"]
    assert await app_services.redis.zscore(keys.places, "bob") == stored["bob"]


async def test_admission_hands_out_a_pass_bound_to_user_and_event(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_queue_event(
        client, auth, starts_in=timedelta(seconds=1), admit_per_second=1, pass_seconds=30
    )
    for user in ("ann", "bob", "cid"):
        assert (await join(client, auth, event.id, user)).status_code == 200
    await sleep_past(app_services.redis, to_ms(event.starts_at) + 1100)  # one admitted
    states = {u: await state(client, auth, event.id, u) for u in ("ann", "bob", "cid")}
    admitted = [u for u, s in states.items() if s["state"] == "admitted"]
    assert len(admitted) == 1, states
    waiting = sorted((s["position"], s["estimated_wait_seconds"]) for s in states.values()
                     if s["state"] == "waiting")  # fmt: skip
    assert waiting == [(2, 1), (3, 2)]

    winner = admitted[0]
    pass_text = states[winner]["pass"]
    assert (await state(client, auth, event.id, winner))["pass"] == pass_text  # stable
    secret = pass_secret(app_services.settings)
    read = passes.read(secret, pass_text)
    assert isinstance(read, passes.Pass)
    assert read.valid_until_ms - read.valid_from_ms == 30_000
    now_ms = await redis_now_ms(app_services.redis)
    assert passes.check(secret, pass_text, event_id=event.id, user_id=winner, now_ms=now_ms) is None
    other = next(u for u in states if u != winner)
    assert passes.check(secret, pass_text, event_id=event.id, user_id=other, now_ms=now_ms) is (
        passes.PassProblem.OTHER_USER
    )
    assert passes.check(secret, pass_text, event_id=event.id + 1, user_id=winner,
                        now_ms=now_ms) is passes.PassProblem.OTHER_EVENT  # fmt: skip
    assert passes.check(secret, pass_text, event_id=event.id, user_id=winner,
                        now_ms=read.valid_until_ms) is passes.PassProblem.EXPIRED  # fmt: skip

    async with app_services.sessionmaker() as session:
        admitted_at = await session.scalar(
            select(QueuePlace.admitted_at).where(
                QueuePlace.event_id == event.id, QueuePlace.user_id == winner
            )
        )
    assert admitted_at is not None
    assert to_ms(admitted_at) == read.valid_from_ms


async def test_sold_out_closes_the_queue_for_everyone_still_waiting(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_queue_event(
        client, auth, starts_in=timedelta(seconds=1), items=[item_spec(sku="HOT-1", stock=1)]
    )
    for user in ("ann", "bob", "cid"):
        assert (await join(client, auth, event.id, user)).status_code == 200
    await sleep_past(app_services.redis, to_ms(event.starts_at) + 1100)
    states = {u: await state(client, auth, event.id, u) for u in ("ann", "bob", "cid")}
    winner = next(u for u, s in states.items() if s["state"] == "admitted")
    bought = await buy(
        client, auth, event.items[0].id, user_id=winner, pass_text=states[winner]["pass"]
    )
    assert bought.status_code == 202, bought.text

    for user in states:
        if user != winner:
            assert await state(client, auth, event.id, user) == {
                "state": "closed",
                "reason": "sold_out",
            }
    assert (await state(client, auth, event.id, winner))["state"] == "admitted"
    late = await join(client, auth, event.id, "late")
    assert late.json() == {"state": "closed", "reason": "sold_out"}


async def test_the_end_closes_the_queue(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_queue_event(
        client, auth, starts_in=timedelta(seconds=1), lasts=timedelta(seconds=1)
    )
    # Joined before the start and not back before the end: never admitted.
    assert (await join(client, auth, event.id, "ann")).json() == {"state": "waiting"}
    await sleep_past(app_services.redis, to_ms(event.ends_at))
    assert await state(client, auth, event.id, "ann") == {"state": "closed", "reason": "ended"}
    late = await join(client, auth, event.id, "late")
    assert late.json() == {"state": "closed", "reason": "ended"}
    assert "late" not in await places(app_services, event.id)
    assert utc_now() >= event.ends_at


async def test_a_poll_of_a_waiting_place_asks_postgres_nothing(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """Cheap at 100k waiting: one script call (one ZRANK), no SQL."""
    event = await create_queue_event(client, auth, starts_in=timedelta(seconds=-1))
    users = [f"shopper-{i}" for i in range(6)]  # one admitted a second: the last waits
    for user in users:
        assert (await join(client, auth, event.id, user)).status_code == 200
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    engine = app_services.engine.sync_engine
    sqlalchemy_event.listen(engine, "before_cursor_execute", count)
    try:
        polled = await state(client, auth, event.id, users[-1])
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", count)
    assert polled["state"] == "waiting"
    assert polled["position"] == 6
    assert statements == []


async def test_an_extended_sale_keeps_its_queue_open(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_queue_event(client, auth, starts_in=timedelta(seconds=-1))
    users = [f"shopper-{i}" for i in range(6)]
    for user in users:
        assert (await join(client, auth, event.id, user)).status_code == 200
    keys = QueueKeys(app_services.settings.redis_key_prefix, event.id)
    # The queue was loaded with an end the sale has since been extended past.
    await app_services.redis.hset(keys.queue, "ends_ms", await redis_now_ms(app_services.redis))
    polled = await state(client, auth, event.id, users[-1])
    assert (polled["state"], polled["position"]) == ("waiting", 6)
    assert await app_services.redis.hget(keys.queue, "ends_ms") == str(to_ms(event.ends_at))
