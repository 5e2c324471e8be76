"""Draws (抽签) through the API, on real Postgres and Redis: the registration window,
repeat- and crowd-safety, the seed's commitment and reveal, winners anyone can recompute,
passes for winners only, proof of work, and a draw that runs once."""

import asyncio
import hashlib
import hmac
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.access import draw_service, passes, pow
from app.access.draw_models import DrawRegistration
from app.access.gate import challenge_of
from app.access.passes import pass_secret
from app.auth import User
from app.container import Container
from app.events.schemas import EventRead
from app.flows.draws import DrawRunner
from app.moments import to_ms, utc_now
from tests.support.draws import (
    close_registration,
    create_access_event,
    draw_access,
    reopen_registration,
)
from tests.support.factories import Auth, assert_problem, event_spec, item_spec
from tests.support.waiting import eventually


async def register(
    client: httpx.AsyncClient, auth: Auth, event_id: int, user_id: str, nonce: str | None = None
) -> httpx.Response:
    headers = auth.headers(user_id)
    if nonce is not None:
        headers["X-Seckill-Pow"] = nonce
    return await client.post(f"/api/v1/events/{event_id}/registrations", headers=headers)


async def mine(
    client: httpx.AsyncClient, auth: Auth, event_id: int, user_id: str
) -> httpx.Response:
    return await client.get(
        f"/api/v1/events/{event_id}/registrations/me", headers=auth.headers(user_id)
    )


async def public_draw(client: httpx.AsyncClient, event_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/events/{event_id}/draw")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def stored_registrations(services: Container, event_id: int) -> int:
    async with services.sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(DrawRegistration)
            .where(DrawRegistration.event_id == event_id)
        )
    return int(count or 0)


def verify(seed: str, registrants: list[str], winners: int) -> set[str]:
    """What anyone can run: rank by hex HMAC-SHA256(key = seed, message = user id)."""
    ranked = sorted(
        registrants,
        key=lambda user: hmac.new(seed.encode(), user.encode(), hashlib.sha256).hexdigest(),
    )
    return set(ranked[:winners])


async def draw_event(
    client: httpx.AsyncClient,
    auth: Auth,
    *,
    stocks: tuple[int, ...] = (7, 3),
    sku: str = "DROP",
    **access: Any,
) -> EventRead:
    items = [item_spec(sku=f"{sku}-{i}", stock=stock) for i, stock in enumerate(stocks)]
    return await create_access_event(client, auth, draw_access(**access), items=items)


# -- the registration window and who may register ------------------------------------


async def test_registration_before_the_window_is_refused(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await draw_event(client, auth, opens_in=timedelta(minutes=10))
    assert_problem(await register(client, auth, event.id, "early"), 409, "not_started")
    assert await stored_registrations(app_services, event.id) == 0
    # Nothing is committed to before registration opens.
    assert await public_draw(client, event.id) == {
        "seed_commitment": None,
        "registrants": 0,
        "winners": None,
    }


async def test_registration_after_the_window_is_refused(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await draw_event(client, auth)
    await close_registration(app_services, event.id)
    assert_problem(await register(client, auth, event.id, "late"), 409, "ended")
    assert await stored_registrations(app_services, event.id) == 0


async def test_once_drawn_registration_stays_closed_whatever_the_clock_says(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await draw_event(client, auth)
    assert (await register(client, auth, event.id, "on-time")).status_code == 201
    await close_registration(app_services, event.id)
    assert (await public_draw(client, event.id))["winners"] == 1
    await reopen_registration(app_services, event.id)  # an API process whose clock is behind
    assert_problem(await register(client, auth, event.id, "too-late"), 409, "ended")
    assert await stored_registrations(app_services, event.id) == 1


@pytest.mark.parametrize("mode", ["open", "queue"])
async def test_an_event_that_is_not_a_draw_has_no_registrations(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, mode: str
) -> None:
    if mode == "queue":
        access: dict[str, Any] = {
            "mode": "queue",
            "opens_at": "2026-01-01T00:00:00Z",
            "admit_per_second": 10,
            "pass_seconds": 60,
        }
    else:
        access = {"mode": "open"}
    event = await create_access_event(client, auth, access)
    assert_problem(await register(client, auth, event.id, "shopper"), 404, "not_found")
    assert_problem(await client.get(f"/api/v1/events/{event.id}/draw"), 404, "not_found")
    assert_problem(await mine(client, auth, event.id, "shopper"), 404, "not_found")


async def test_unknown_events_and_anonymous_callers_are_refused(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    assert_problem(await register(client, auth, 999_999, "shopper"), 404, "not_found")
    event = await draw_event(client, auth)
    anonymous = await client.post(f"/api/v1/events/{event.id}/registrations")
    assert_problem(anonymous, 401, "unauthorized")
    assert_problem(await mine(client, auth, event.id, "never-registered"), 404, "not_found")


async def test_a_reversed_registration_window_is_refused(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    body = draw_access(lasts=timedelta(hours=-1))
    response = await client.post(
        "/api/v1/admin/events", json={**event_spec(), "access": body}, headers=auth.admin()
    )
    assert_problem(response, 422, "validation_error")


# -- repeat- and crowd-safety --------------------------------------------------------


async def test_registering_twice_is_one_registration(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await draw_event(client, auth)
    first = await register(client, auth, event.id, "twice")
    second = await register(client, auth, event.id, "twice")
    assert first.status_code == second.status_code == 201, second.text
    assert first.json() == second.json()
    assert first.json()["status"] == "registered"
    assert "pass" not in first.json()
    assert await stored_registrations(app_services, event.id) == 1
    me = await mine(client, auth, event.id, "twice")
    assert me.status_code == 200
    assert me.json() == first.json()


async def test_a_crowd_registers_each_user_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await draw_event(client, auth)
    users = [f"crowd-{i}" for i in range(150)]
    # 200 registrations at once: every user once, 50 of them twice.
    attempts = users + users[:50]
    responses = await asyncio.gather(*(register(client, auth, event.id, u) for u in attempts))
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses][:3]
    assert await stored_registrations(app_services, event.id) == 150
    assert (await public_draw(client, event.id))["registrants"] == 150


# -- the seed, the ranking, the winners and their passes -----------------------------


async def test_the_draw_is_verifiable_from_the_revealed_seed(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await draw_event(client, auth, stocks=(7, 3), purchase_window_seconds=900)
    users = [f"buyer-{i}" for i in range(30)]
    for user in users:
        assert (await register(client, auth, event.id, user)).status_code == 201

    before = await public_draw(client, event.id)
    assert before["registrants"] == 30
    assert before["winners"] is None
    assert "seed" not in before
    commitment = before["seed_commitment"]
    assert len(commitment) == 64
    assert (await mine(client, auth, event.id, users[0])).json()["status"] == "registered"

    await close_registration(app_services, event.id)
    after = await public_draw(client, event.id)  # the first read after the close draws
    assert after["seed_commitment"] == commitment
    assert hashlib.sha256(after["seed"].encode()).hexdigest() == commitment
    assert after["registrants"] == 30
    assert after["winners"] == 10  # the event's total stock, 7 + 3

    expected = verify(after["seed"], users, 10)
    secret = pass_secret(app_services.settings)
    starts_ms = to_ms(event.starts_at)
    for user in users:
        body = (await mine(client, auth, event.id, user)).json()
        if user in expected:
            assert body["status"] == "won", user
            ticket = body["pass"]
            check = passes.check
            assert check(secret, ticket, event_id=event.id, user_id=user, now_ms=starts_ms) is None
            assert (
                check(secret, ticket, event_id=event.id, user_id=user, now_ms=starts_ms - 1)
                is passes.PassProblem.NOT_YET
            )
            assert (
                check(secret, ticket, event_id=event.id, user_id=user, now_ms=starts_ms + 900_000)
                is passes.PassProblem.EXPIRED
            )
            assert (
                check(secret, ticket, event_id=event.id, user_id="other", now_ms=starts_ms)
                is passes.PassProblem.OTHER_USER
            )
            # The pass is the same on every read.
            again = (await mine(client, auth, event.id, user)).json()
            assert again["pass"] == ticket
        else:
            assert body["status"] == "lost", user
            assert "pass" not in body


async def test_an_explicit_number_of_winners(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await draw_event(client, auth, winners=3)
    users = [f"fan-{i}" for i in range(12)]
    for user in users:
        assert (await register(client, auth, event.id, user)).status_code == 201
    await close_registration(app_services, event.id)
    # The first read after the close is a registrant's: it draws too.
    await mine(client, auth, event.id, users[0])
    draw = await public_draw(client, event.id)
    assert draw["winners"] == 3
    won = {u for u in users if (await mine(client, auth, event.id, u)).json()["status"] == "won"}
    assert won == verify(draw["seed"], users, 3)


async def test_fewer_registrants_than_winners_all_win(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await draw_event(client, auth, stocks=(100,))
    for user in ("a", "b"):
        assert (await register(client, auth, event.id, user)).status_code == 201
    await close_registration(app_services, event.id)
    draw = await public_draw(client, event.id)
    assert (draw["registrants"], draw["winners"]) == (2, 2)
    for user in ("a", "b"):
        assert (await mine(client, auth, event.id, user)).json()["status"] == "won"


async def test_a_draw_without_registrants(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await draw_event(client, auth)
    await close_registration(app_services, event.id)
    draw = await public_draw(client, event.id)
    assert (draw["registrants"], draw["winners"]) == (0, 0)
    assert hashlib.sha256(draw["seed"].encode()).hexdigest() == draw["seed_commitment"]


# -- the worker's draws --------------------------------------------------------------


async def test_the_worker_draws_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await draw_event(client, auth, winners=4)
    other = await draw_event(client, auth, sku="OTHER")  # still open: not due
    users = [f"w-{i}" for i in range(10)]
    for user in users:
        assert (await register(client, auth, event.id, user)).status_code == 201
    commitment = (await public_draw(client, event.id))["seed_commitment"]
    await close_registration(app_services, event.id)

    runner = DrawRunner(services=app_services)
    assert await runner.draw_once() == 1
    draw = await public_draw(client, event.id)
    outcomes = {u: (await mine(client, auth, event.id, u)).json() for u in users}
    assert draw["seed_commitment"] == commitment
    assert {u for u, o in outcomes.items() if o["status"] == "won"} == verify(
        draw["seed"], users, 4
    )

    # Twice: nothing changes (the worker, then a read, then the worker again).
    assert await runner.draw_once() == 0
    async with app_services.sessionmaker() as session, session.begin():
        again = await draw_service.draw_due(session=session, event_id=event.id, now=utc_now())
    assert again is False
    assert await public_draw(client, event.id) == draw
    assert {u: (await mine(client, auth, event.id, u)).json() for u in users} == outcomes
    assert (await public_draw(client, other.id))["winners"] is None


# -- proof of work -------------------------------------------------------------------


async def test_registration_needs_proof_of_work_when_the_event_asks(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await draw_event(client, auth, pow_bits=10)
    challenge = challenge_of(app_services.settings, event.id)
    assert_problem(await register(client, auth, event.id, "solver"), 403, "challenge_required")
    wrong = pow.solve(challenge=challenge, user_id="someone-else", bits=10)
    if not pow.solves(challenge=challenge, user_id="solver", nonce=wrong, bits=10):
        assert_problem(
            await register(client, auth, event.id, "solver", wrong), 403, "challenge_required"
        )
    assert await stored_registrations(app_services, event.id) == 0

    # Longer than any answer: refused unread, as a join's (the queue route's 422).
    too_long = "0" * (pow.MAX_NONCE_LENGTH + 1)
    assert (await register(client, auth, event.id, "solver", too_long)).status_code == 422
    assert await stored_registrations(app_services, event.id) == 0

    nonce = pow.solve(challenge=challenge, user_id="solver", bits=10)
    assert (await register(client, auth, event.id, "solver", nonce)).status_code == 201
    assert await stored_registrations(app_services, event.id) == 1


async def test_the_draw_waits_for_a_registration_in_flight_and_counts_it(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """A registration accepted just before the close commits after it: the draw waits
    for it and ranks it, and a read meanwhile answers the state before the draw."""
    event = await draw_event(client, auth, winners=1)
    assert (await register(client, auth, event.id, "early-bird")).status_code == 201
    runner = DrawRunner(services=app_services)
    async with app_services.sessionmaker() as held, held.begin():
        answer = await draw_service.register(
            session=held,
            settings=app_services.settings,
            event_id=event.id,
            user=User(id="in-flight"),
            pow_nonce=None,
            now=utc_now(),
        )
        assert answer.status == "registered"
        await close_registration(app_services, event.id)
        drawing = asyncio.create_task(runner.draw_once())
        await asyncio.sleep(0.5)
        assert not drawing.done()
        # A read does not wait for the lock: the draw has not happened yet.
        assert (await public_draw(client, event.id))["winners"] is None
    assert await drawing == 1
    draw = await public_draw(client, event.id)
    assert draw["registrants"] == 2
    statuses = {
        u: (await mine(client, auth, event.id, u)).json()["status"]
        for u in ("early-bird", "in-flight")
    }
    assert statuses == {
        u: ("won" if u in verify(draw["seed"], ["early-bird", "in-flight"], 1) else "lost")
        for u in statuses
    }


@pytest.mark.parametrize("settings_overrides", [{"draw_check_seconds": 0.05}])
async def test_the_worker_loop_draws_when_registration_closes(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await draw_event(client, auth, winners=1)
    assert (await register(client, auth, event.id, "only-one")).status_code == 201
    stop = asyncio.Event()
    runner = DrawRunner(services=app_services)
    loop = asyncio.create_task(runner.run(stop))
    try:
        await asyncio.sleep(0.2)
        assert runner.drawn == 0  # still open
        await close_registration(app_services, event.id)

        async def drawn() -> bool:
            return runner.drawn == 1

        await eventually(drawn)
    finally:
        stop.set()
        await loop
    assert (await mine(client, auth, event.id, "only-one")).json()["status"] == "won"
