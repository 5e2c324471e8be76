"""SIGTERM during a crowd (a rolling deploy, a scale-in) loses nothing: the API stops
taking connections and finishes the requests in flight, the worker finishes its batch;
clients whose request did not get through retry on the other API with their key."""

import asyncio
import random
import signal
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.container import Container
from tests.faults.books import assert_books_balance
from tests.support.factories import Auth, create_live_item
from tests.support.orders import stored_order_ids
from tests.support.outages import closed_port
from tests.support.processes import start_cli, until_serving
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults, pytest.mark.slow]
STOCK = 150
USERS = 200


async def test_sigterm_to_an_api_and_the_worker_mid_crowd_loses_nothing(
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    settings: Settings,
    tmp_path: Path,
) -> None:
    item = await create_live_item(client, auth, stock=STOCK, per_user_limit=1)
    ports = [closed_port(), closed_port()]
    apis = [
        await start_cli(settings, "serve", "--port", str(p), log=tmp_path / f"api{n}.log")
        for n, p in enumerate(ports)
    ]
    worker = await start_cli(settings, "worker", log=tmp_path / "worker.log")
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    heir: asyncio.subprocess.Process | None = None
    try:
        for base in bases:
            await until_serving(base)
        rng = random.Random(5)
        told: dict[str, httpx.Response] = {}
        transport_errors = 0

        async def shopper(user: str, http: httpx.AsyncClient) -> None:
            nonlocal transport_errors
            await asyncio.sleep(rng.random() * 2.0)
            headers = {**auth.headers(user), "Idempotency-Key": f"key-{user}"}
            for attempt in range(200):
                base = bases[attempt % 2]  # the first try goes to the API being stopped
                try:
                    answer = await http.post(
                        f"{base}/api/v1/items/{item.id}/purchase", json={}, headers=headers
                    )
                except httpx.TransportError:
                    transport_errors += 1
                    continue
                assert answer.status_code != 500, answer.text
                if answer.status_code != 503:
                    told[user] = answer
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"{user} never got an answer")

        async with httpx.AsyncClient(timeout=30) as http:
            crowd = asyncio.gather(*(shopper(f"u{n}", http) for n in range(USERS)))

            async def some_answered() -> bool:
                return len(told) >= 30

            await eventually(some_answered)
            apis[0].send_signal(signal.SIGTERM)
            worker.send_signal(signal.SIGTERM)
            answered_at_stop = len(told)
            heir = await start_cli(settings, "worker", log=tmp_path / "heir.log")
            await crowd
        assert answered_at_stop < STOCK, "stopped too late to prove anything"

        accepted = {u: r.json()["order_id"] for u, r in told.items() if r.status_code == 202}
        refused = {u: r.json()["code"] for u, r in told.items() if r.status_code != 202}
        assert set(refused.values()) <= {"sold_out"}, refused
        assert len(accepted) == STOCK

        async def all_stored() -> bool:
            return len(await stored_order_ids(app_services)) >= STOCK

        await eventually(all_stored)
    finally:
        for process in [*apis, worker, *([heir] if heir else [])]:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        codes = [await p.wait() for p in [*apis, worker]]
        if heir is not None:
            await heir.wait()
    # The stopped API drained and exited (uvicorn re-raises the SIGTERM it handled).
    assert codes[0] in (0, 128 + signal.SIGTERM), (tmp_path / "api0.log").read_text()
    assert "Finished server process" in (tmp_path / "api0.log").read_text()
    worker_log = (tmp_path / "worker.log").read_text()
    assert codes[2] == 0, worker_log
    assert "stopped after storing" in worker_log
    assert "Traceback" not in worker_log
    await assert_books_balance(app_services, item.id, allocated=STOCK, accepted=accepted)
