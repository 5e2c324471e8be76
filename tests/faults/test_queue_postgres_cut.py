"""Postgres unreachable while a crowd joins a waiting room (the API reaches it through a
proxy the test cuts). A join is decided in Redis and its place stored by the order
writer: the joins that meet the cut are answered (200) as before it, a join that needs
Postgres (a queue Redis does not hold yet) answers 503, never 500, and once Postgres is
back the writer stores every place once, with the scores Redis holds."""

import asyncio
import signal
from pathlib import Path
from typing import cast

import httpx
import pytest

from app.config import Settings
from app.container import Container
from app.store.queue_keys import QueueKeys
from tests.support.factories import Auth, item_spec
from tests.support.outages import closed_port
from tests.support.processes import start_cli, until_serving
from tests.support.proxy import postgres_proxy
from tests.support.queues import create_queue_event, places
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults, pytest.mark.slow]
BEFORE, DURING = 150, 150  # joiners before the cut and while Postgres is away
RETRY_PAUSE_SECONDS = 0.05


async def test_joins_meeting_a_postgres_cut_are_answered_from_redis(
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

    async def in_redis() -> dict[str, int]:
        found = await app_services.redis.zrange(keys.places, 0, -1, withscores=True)
        return {str(u): int(s) for u, s in cast(list[tuple[str, float]], found)}

    try:
        base = f"http://127.0.0.1:{port}"
        await until_serving(base)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:

            async def join(user: str, event_id: int = event.id) -> int:
                answer = await http.post(
                    f"/api/v1/events/{event_id}/queue", headers=auth.headers(user)
                )
                assert answer.status_code != 500, answer.text
                return answer.status_code

            before = [f"before{n}" for n in range(BEFORE)]
            assert set(await asyncio.gather(*(join(u) for u in before))) == {200}
            await proxy.cut()
            during = [f"during{n}" for n in range(DURING)]
            assert set(await asyncio.gather(*(join(u) for u in during))) == {200}
            # A queue no process has loaded yet (made now, past the API's start-up check):
            # loading it needs Postgres.
            unloaded = await create_queue_event(client, auth, items=[item_spec(sku="PHONE-2")])
            assert await join("first", unloaded.id) == 503
            assert sorted(await in_redis()) == sorted(before + during)
            await proxy.open()

            async def loaded() -> bool:
                if await join("first", unloaded.id) == 200:
                    return True
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
                return False

            await eventually(loaded)
    finally:
        if api.returncode is None:
            api.send_signal(signal.SIGTERM)
        await api.wait()
        await proxy.cut()
    stored = await places(app_services, event.id)  # the order writer stores them
    assert sorted(stored) == sorted(before + during)
    assert await in_redis() == stored
    assert await app_services.redis.hlen(keys.queued) == 0
