"""SIGKILL mid-crowd, with no warning and no drain: an API process killed while requests
are in flight (some of them already taken by the purchase script, their answer never
sent), and the order writer killed mid-batch. Each comes back; clients that heard
nothing retry with the same Idempotency-Key on either API. Afterwards: every order a
client was told about is stored exactly once, nothing else is, nothing oversold, nobody
over the limit, the audit clean."""

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
from tests.support.outages import closed_port
from tests.support.processes import start_cli, until_serving
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults, pytest.mark.slow]
STOCK = 150
USERS = 250
RETRY_PAUSE_SECONDS = 0.05  # Retry-After, scaled down
MAX_TRIES = 2_000  # a client gives up after ~100 s of refusals: the test then fails


async def test_sigkill_of_apis_and_the_worker_at_random_points_loses_and_repeats_nothing(
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    settings: Settings,
    tmp_path: Path,
) -> None:
    item = await create_live_item(client, auth, stock=STOCK, per_user_limit=1)
    rng = random.Random(13)
    ports = [closed_port(), closed_port()]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    starts = {"api0": 0, "api1": 0, "worker": 0}

    async def start(role: str) -> asyncio.subprocess.Process:
        starts[role] += 1
        log = tmp_path / f"{role}-{starts[role]}.log"
        if role == "worker":
            return await start_cli(settings, "worker", log=log)
        return await start_cli(settings, "serve", "--port", str(ports[int(role[-1])]), log=log)

    processes = {role: await start(role) for role in starts}
    told: dict[str, httpx.Response] = {}
    unheard = 0  # requests that got no answer: killed mid-request, or the API not back yet
    try:
        for base in bases:
            await until_serving(base)

        async def shopper(n: int, http: httpx.AsyncClient) -> None:
            nonlocal unheard
            user = f"u{n}"
            await asyncio.sleep(rng.random() * 3.0)
            headers = {**auth.headers(user), "Idempotency-Key": f"key-{user}"}
            for attempt in range(MAX_TRIES):
                try:
                    answer = await http.post(
                        f"{bases[(attempt + n) % 2]}/api/v1/items/{item.id}/purchase",
                        json={},
                        headers=headers,
                    )
                except httpx.TransportError:
                    unheard += 1
                    await asyncio.sleep(RETRY_PAUSE_SECONDS)
                    continue
                assert answer.status_code != 500, answer.text
                if answer.status_code != 503:
                    told[user] = answer
                    return
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
            raise AssertionError(f"{user} never got an answer")

        async def killer() -> None:
            """Kills each process once, at a random number of answers, and restarts it."""
            marks = sorted(rng.sample(range(10, STOCK - 10), 3))
            for role, mark in zip(rng.sample(list(starts), 3), marks, strict=True):

                async def reached(mark: int = mark) -> bool:
                    return len(told) >= mark

                await eventually(reached)
                processes[role].send_signal(signal.SIGKILL)
                await processes[role].wait()
                processes[role] = await start(role)

        async with httpx.AsyncClient(timeout=30) as http:
            await asyncio.gather(killer(), *(shopper(n, http) for n in range(USERS)))
    finally:
        for process in processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            await process.wait()
    assert sum(starts.values()) == 6, "every process was killed once and restarted"
    assert unheard > 0, "the kills hit no traffic: they prove nothing"

    accepted = {u: r.json()["order_id"] for u, r in told.items() if r.status_code == 202}
    refused = {u: r.json()["code"] for u, r in told.items() if r.status_code != 202}
    assert set(refused.values()) <= {"sold_out"}, refused
    assert len(accepted) == STOCK
    await assert_books_balance(app_services, item.id, allocated=STOCK, accepted=accepted)
