"""The waiting room's join and poll below the framework (app/access/queue_front.py)
answer every request as the framework's routes do, and the joins of one moment, sent to
Redis together, are each decided alone."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.access.gate import challenge_of
from app.access.pow import solve
from app.access.queue_front import ThinQueueRoute
from app.config import Settings
from app.container import Container
from app.processes.api import create_app
from app.store.queue import ARRIVALS
from app.store.queue_keys import QueueKeys
from tests.support.factories import Auth
from tests.support.queues import create_queue_event, places
from tests.support.thin import started_client, thin_in_front


@pytest.fixture
async def framework_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The same app and database with every queue call through FastAPI's routes."""
    framework = create_app(settings.model_copy(update={"thin_queue_route": False}))
    async with started_client(framework) as c:
        yield c


async def _calls(client: httpx.AsyncClient, auth: Auth, event_id: int, who: str) -> list[Any]:
    """Each call's status, body and headers (the user ids are the caller's own; `who`-a
    solves the event's challenge)."""
    path = f"/api/v1/events/{event_id}/queue"
    nonce = solve(challenge=challenge_of(auth.settings, event_id), user_id=f"{who}-a", bits=4)
    assert nonce is not None
    solved = {**auth.headers(f"{who}-a"), "X-Seckill-Pow": nonce}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("poll before joining", "GET", {"headers": auth.headers(f"{who}-a")}),
        ("join", "POST", {"headers": solved}),
        ("join again", "POST", {"headers": solved}),
        ("poll", "GET", {"headers": auth.headers(f"{who}-a")}),
        ("no token", "POST", {}),
        ("bad token", "GET", {"headers": {"Authorization": "Bearer nope"}}),
        ("no proof of work", "POST", {"headers": auth.headers(f"{who}-b")}),
        (
            "a wrong proof of work",
            "POST",
            {"headers": {**auth.headers(f"{who}-b"), "X-Seckill-Pow": "x"}},
        ),
        (
            "an over-long proof of work",
            "POST",
            {"headers": {**auth.headers(f"{who}-b"), "X-Seckill-Pow": "x" * 65}},
        ),
        ("a body", "POST", {"headers": auth.headers(f"{who}-c"), "json": {"a": 1}}),
        ("a query string", "GET", {"headers": auth.headers(f"{who}-a"), "params": {"x": "1"}}),
        ("no such event", "POST", {"headers": auth.headers(f"{who}-a"), "path": "999999"}),
        ("a leading zero", "GET", {"headers": auth.headers(f"{who}-a"), "path": f"0{event_id}"}),
    ]
    answers = []
    for name, method, options in calls:
        where = options.pop("path", None)
        url = path if where is None else f"/api/v1/events/{where}/queue"
        response = await client.request(method, url, **options)
        body = json.loads(response.text.replace(who, "WHO"))
        kept = sorted((k, v) for k, v in response.headers.items() if k != "content-length")
        answers.append((name, response.status_code, body, kept))
    return answers


async def test_both_ways_answer_every_call_alike(
    client: httpx.AsyncClient, framework_client: httpx.AsyncClient, auth: Auth
) -> None:
    # A proof of work asked (a few bits): the refusals are part of what is compared.
    event = await create_queue_event(client, auth, pow_bits=4)
    thin = await _calls(client, auth, event.id, "thin")
    framework = await _calls(framework_client, auth, event.id, "framework")
    assert [a[0] for a in thin if a not in framework] == []
    statuses = {name: status for name, status, _, _ in thin}
    assert statuses["join"] == statuses["join again"] == statuses["poll"] == 200
    assert statuses["poll before joining"] == statuses["no such event"] == 404
    assert statuses["no token"] == statuses["bad token"] == 401
    assert statuses["no proof of work"] == statuses["a wrong proof of work"] == 403
    assert statuses["an over-long proof of work"] == 422


async def test_the_joins_of_one_moment_are_each_decided_alone(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """Joins sent at once (one round trip to Redis): a wrong proof of work is refused
    alone, a user twice holds one place, the others are stored; nothing is stored for the
    refused one."""
    event = await create_queue_event(client, auth, pow_bits=4)
    challenge = challenge_of(auth.settings, event.id)
    path = f"/api/v1/events/{event.id}/queue"

    def solved(user_id: str) -> dict[str, str]:
        nonce = solve(challenge=challenge, user_id=user_id, bits=4)
        return {**auth.headers(user_id), "X-Seckill-Pow": nonce}

    joins = [
        solved("ann"),
        {**auth.headers("bob"), "X-Seckill-Pow": "wrong"},
        solved("cid"),
        solved("ann"),
    ]
    responses = await asyncio.gather(*(client.post(path, headers=h) for h in joins))
    assert [r.status_code for r in responses] == [200, 403, 200, 200]
    assert responses[1].json()["code"] == "challenge_required"
    assert sorted(await places(app_services, event.id)) == ["ann", "cid"]


async def test_a_crowd_of_arrivals_each_takes_the_next_arrival_number(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """300 joins at once after the start: every place stored once, the arrival numbers
    1 to 300 each given once (score ARRIVALS + the number), in Postgres and Redis alike."""
    event = await create_queue_event(client, auth, starts_in=timedelta(seconds=-1))
    users = [f"arrival-{i}" for i in range(300)]
    path = f"/api/v1/events/{event.id}/queue"
    responses = await asyncio.gather(*(client.post(path, headers=auth.headers(u)) for u in users))
    assert {r.status_code for r in responses} == {200}
    stored = await places(app_services, event.id)
    assert sorted(stored) == sorted(users)
    assert sorted(stored.values()) == [ARRIVALS + n for n in range(1, len(users) + 1)]
    keys = QueueKeys(app_services.settings.redis_key_prefix, event.id)
    for user in users:
        assert await app_services.redis.zscore(keys.places, user) == stored[user]


async def test_joins_refused_as_a_whole_store_nothing(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    missing = 987_654
    path = f"/api/v1/events/{missing}/queue"
    users = [f"nobody-{i}" for i in range(50)]
    responses = await asyncio.gather(*(client.post(path, headers=auth.headers(u)) for u in users))
    assert {r.status_code for r in responses} == {404}
    assert await places(app_services, missing) == {}


async def test_well_formed_joins_and_polls_never_reach_the_framework(
    settings: Settings, auth: Auth
) -> None:
    framework = create_app(settings.model_copy(update={"thin_queue_route": False}))
    async with thin_in_front(framework, ThinQueueRoute) as (c, reached):
        event = await create_queue_event(c, auth)  # an admin route: the framework's
        reached.clear()
        path = f"/api/v1/events/{event.id}/queue"
        well_formed: list[tuple[str, dict[str, Any]]] = [
            ("POST", {"headers": auth.headers("a")}),
            ("GET", {"headers": auth.headers("a")}),
            ("GET", {"headers": auth.headers("b")}),  # 404: holds no place
            ("POST", {"headers": {"Authorization": "Bearer nope"}}),  # 401
        ]
        statuses = [(await c.request(m, path, **o)).status_code for m, o in well_formed]
        assert statuses == [200, 200, 404, 401]
        assert reached == []
        unusual: list[tuple[str, dict[str, Any]]] = [
            ("POST", {"headers": {}}),
            ("POST", {"headers": auth.headers("c"), "json": {}}),
            ("GET", {"headers": auth.headers("a"), "params": {"x": "1"}}),
            ("POST", {"headers": {**auth.headers("c"), "X-Seckill-Pow": "n" * 65}}),
        ]
        statuses = [(await c.request(m, path, **o)).status_code for m, o in unusual]
        assert statuses == [401, 200, 200, 422]
        assert reached == [path] * len(unusual)
