"""A stats stream ends when the operator's token expires, or after the configured
maximum, whichever comes first (issue 17, case 14): a stream is no way to outlive a
token. Each test reads a real stream over a socket until the server ends it."""

import asyncio
import json
import math
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest

from app.auth import mint_token
from app.config import Settings
from tests.support.factories import Auth, assert_problem, create_event

INTERVAL = 0.1
MAX_SECONDS = 1.0
TOKEN_SECONDS = 2
# A guard against a stream that never ends (the fault), not a speed requirement.
GUARD_SECONDS = 60


async def stats_until_the_end(base_url: str, path: str, token: str) -> list[dict[str, Any]]:
    """Every stats message of the stream, read until the server ends it."""
    received: list[dict[str, Any]] = []
    async with (
        asyncio.timeout(GUARD_SECONDS),
        httpx.AsyncClient(base_url=base_url, timeout=GUARD_SECONDS) as http,
        http.stream("GET", path, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                received.append(json.loads(line.removeprefix("data: ")))
    return received


@pytest.mark.parametrize(
    "settings_overrides",
    [{"jwt_leeway_seconds": 0, "stats_stream_interval_seconds": INTERVAL}],
)
async def test_a_stream_ends_when_the_operators_token_expires(
    http_base_url: str, client: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    event = await create_event(client, auth)
    path = f"/api/v1/admin/events/{event.id}/stats/stream"
    token = mint_token(settings, user_id="ops", admin=True, ttl_seconds=TOKEN_SECONDS)
    claims = jwt.decode(token, options={"verify_signature": False})
    expires = datetime.fromtimestamp(claims["exp"], UTC)

    received = await stats_until_the_end(http_base_url, path, token)

    assert received, "the stream sent stats while the token was valid"
    assert all(datetime.fromisoformat(m["at"]) <= expires for m in received)
    # The client reconnects with the same token: refused now, it asks for a new one.
    assert_problem(
        await client.get(path, headers={"Authorization": f"Bearer {token}"}),
        401,
        "unauthorized",
    )


@pytest.mark.parametrize(
    "settings_overrides",
    [{"live_stream_max_seconds": MAX_SECONDS, "stats_stream_interval_seconds": INTERVAL}],
)
async def test_a_stream_ends_after_the_maximum_duration(
    http_base_url: str, client: httpx.AsyncClient, auth: Auth
) -> None:
    event = await create_event(client, auth)
    path = f"/api/v1/admin/events/{event.id}/stats/stream"
    token = auth.admin()["Authorization"].removeprefix("Bearer ")  # valid for a day

    received = await stats_until_the_end(http_base_url, path, token)

    # At least one message, and never more than fit in the maximum at one per interval.
    assert 1 <= len(received) <= math.ceil(MAX_SECONDS / INTERVAL)
    again = await stats_until_the_end(http_base_url, path, token)  # a reconnect is served
    assert again
