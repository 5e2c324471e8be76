"""Postgres unreachable while a crowd joins a waiting room (the API reaches it through a
proxy the test cuts). A join is answered only once its group's transaction committed: the
joins that meet the cut answer 503, never 500, and leave nothing in Redis; once Postgres
is back they join, and Redis and Postgres hold the same places with the same scores."""

import asyncio
import signal
from pathlib import Path
from typing import cast

import httpx
import pytest

from app.config import Settings
from app.container import Container
from app.store.queue_keys import QueueKeys
from tests.support.factories import Auth
from tests.support.outages import closed_port
from tests.support.processes import start_cli, until_serving
from tests.support.proxy import postgres_proxy
from tests.support.queues import create_queue_event, places
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults, pytest.mark.slow]
BEFORE, DURING = 150, 150  # joiners before the cut and while Postgres is away
RETRY_PAUSE_SECONDS = 0.05


async def test_joins_meeting_a_postgres_cut_answer_503_and_store_nothing(
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    settings: Settings,
    tmp_path: Path,
) -> None:
    event = await create_queue_event(client, auth)
    keys = QueueKeys(settings.redis_key_prefix, event.id)
    assert settings.database_url
    proxy, through_proxy = await postgres_proxy(settings.database_url)
    proxied = settings.model_copy(
        update={
            "database_url": through_proxy,
            "db_connect_timeout_seconds": 2.0,
        }
    )
    port = closed_port()
    api = await start_cli(proxied, "serve", "--port", str(port), log=tmp_path / "api.log")
    path = f"/api/v1/events/{event.id}/queue"

    async def in_redis() -> dict[str, int]:
        found = await app_services.redis.zrange(keys.places, 0, -1, withscores=True)
        return {str(u): int(s) for u, s in cast(list[tuple[str, float]], found)}

    try:
        base = f"http://127.0.0.1:{port}"
        await until_serving(base)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:

            async def join(user: str) -> int:
                answer = await http.post(path, headers=auth.headers(user))
                assert answer.status_code != 500, answer.text
                return answer.status_code

            before = [f"before{n}" for n in range(BEFORE)]
            assert set(await asyncio.gather(*(join(u) for u in before))) == {200}
            await proxy.cut()
            during = [f"during{n}" for n in range(DURING)]
            refused = await asyncio.gather(*(join(u) for u in during))
            assert set(refused) == {503}
            # No group that failed to commit told Redis of its places.
            assert sorted(await in_redis()) == sorted(before)
            await proxy.open()

            async def joined(user: str) -> None:
                async def answered() -> bool:
                    if await join(user) == 200:
                        return True
                    await asyncio.sleep(RETRY_PAUSE_SECONDS)
                    return False

                await eventually(answered)

            await asyncio.gather(*(joined(u) for u in during))
    finally:
        if api.returncode is None:
            api.send_signal(signal.SIGTERM)
        await api.wait()
        await proxy.cut()
    stored = await places(app_services, event.id)
    assert sorted(stored) == sorted(before + during)
    assert await in_redis() == stored
