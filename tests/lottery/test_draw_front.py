"""A lottery's draw below the framework (app/lottery/front.py) answers every request as
the framework's route does."""

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.processes.api import create_app
from tests.support.factories import Auth
from tests.support.lottery import create_lottery, prize_spec
from tests.support.thin import started_client


@pytest.fixture
async def framework_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The same app and database with every draw through FastAPI's route."""
    framework = create_app(settings.model_copy(update={"thin_lottery_route": False}))
    async with started_client(framework) as c:
        yield c


async def _calls(
    client: httpx.AsyncClient, auth: Auth, lottery_id: int, later_id: int, who: str
) -> list[Any]:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("draw", {"headers": auth.headers(f"{who}-a")}),
        ("draw again", {"headers": auth.headers(f"{who}-a")}),
        ("past the day's draws", {"headers": auth.headers(f"{who}-a")}),
        ("no token", {}),
        ("bad token", {"headers": {"Authorization": "Bearer nope"}}),
        ("a body", {"headers": auth.headers(f"{who}-b"), "json": {"a": 1}}),
        ("a query string", {"headers": auth.headers(f"{who}-c"), "params": {"x": "1"}}),
        ("no such lottery", {"headers": auth.headers(f"{who}-d"), "path": "999999"}),
        ("a leading zero", {"headers": auth.headers(f"{who}-e"), "path": f"0{lottery_id}"}),
        ("not started", {"headers": auth.headers(f"{who}-f"), "path": str(later_id)}),
    ]
    answers = []
    for name, options in calls:
        where = options.pop("path", lottery_id)
        response = await client.post(f"/api/v1/lotteries/{where}/draw", **options)
        body = json.loads(response.text.replace(who, "WHO"))
        if isinstance(body.get("prize"), dict):
            body["prize"]["win_id"] = "WIN"
        kept = sorted((k, v) for k, v in response.headers.items() if k != "content-length")
        answers.append((name, response.status_code, body, kept))
    return answers


async def test_both_ways_answer_every_call_alike(
    client: httpx.AsyncClient, framework_client: httpx.AsyncClient, auth: Auth
) -> None:
    lottery = await create_lottery(
        client, auth, prizes=[prize_spec(quantity=1000)], draws_per_user_per_day=2
    )
    later = await create_lottery(client, auth, starts_in=timedelta(hours=1))
    thin = await _calls(client, auth, lottery["id"], later["id"], "thin")
    framework = await _calls(framework_client, auth, lottery["id"], later["id"], "framework")
    assert [a[0] for a in thin if a not in framework] == []
    statuses = {name: status for name, status, _, _ in thin}
    assert statuses["draw"] == statuses["draw again"] == statuses["a body"] == 200
    assert statuses["past the day's draws"] == statuses["not started"] == 409
    assert statuses["no token"] == statuses["bad token"] == 401
    assert statuses["no such lottery"] == 404
