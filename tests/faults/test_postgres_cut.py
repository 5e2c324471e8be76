"""Postgres unreachable for 30 s in the middle of a crowd, for the API and the order
writer alike (both reach it through a proxy the test cuts). Purchases go on answering
from Redis; reads that need Postgres answer 503, never 500; accepted orders wait in the
stream and are all stored, exactly once, when Postgres is back."""

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
from tests.support.proxy import postgres_proxy
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults, pytest.mark.slow]
CUT_SECONDS = 30.0
STOCK = 400
BEFORE, DURING, AFTER = 60, 300, 100  # shoppers before, during and after the cut
RETRY_PAUSE_SECONDS = 0.05


async def test_postgres_away_for_30_seconds_mid_crowd_loses_and_repeats_nothing(
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    settings: Settings,
    tmp_path: Path,
) -> None:
    item = await create_live_item(client, auth, stock=STOCK, per_user_limit=1)
    assert settings.database_url
    proxy, through_proxy = await postgres_proxy(settings.database_url)
    proxied = settings.model_copy(
        update={
            "database_url": through_proxy,
            "db_connect_timeout_seconds": 2.0,
            "worker_backoff_max_seconds": 1.0,
        }
    )
    port = closed_port()
    base = f"http://127.0.0.1:{port}"
    api = await start_cli(proxied, "serve", "--port", str(port), log=tmp_path / "api.log")
    worker = await start_cli(proxied, "worker", log=tmp_path / "worker.log")
    rng = random.Random(8)
    told: dict[str, httpx.Response] = {}
    reads_during_cut: list[int] = []
    try:
        await until_serving(base)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:

            async def shopper(user: str, spread_seconds: float) -> None:
                await asyncio.sleep(rng.random() * spread_seconds)
                headers = {**auth.headers(user), "Idempotency-Key": f"key-{user}"}

                async def answered() -> bool:
                    answer = await http.post(
                        f"/api/v1/items/{item.id}/purchase", json={}, headers=headers
                    )
                    assert answer.status_code != 500, answer.text
                    if answer.status_code == 503:
                        await asyncio.sleep(RETRY_PAUSE_SECONDS)
                        return False
                    told[user] = answer
                    return True

                await eventually(answered)

            await asyncio.gather(*(shopper(f"before{n}", 1.0) for n in range(BEFORE)))

            async def all_stored() -> bool:
                return len(await stored_order_ids(app_services)) >= BEFORE

            await eventually(all_stored)
            await proxy.cut()
            cut_over = asyncio.get_running_loop().time() + CUT_SECONDS
            crowd = asyncio.gather(*(shopper(f"during{n}", CUT_SECONDS / 2) for n in range(DURING)))
            while asyncio.get_running_loop().time() < cut_over:
                order_id = told["before0"].json()["order_id"]
                read = await http.get(f"/api/v1/orders/{order_id}", headers=auth.headers("before0"))
                assert read.status_code in (200, 503), read.text
                reads_during_cut.append(read.status_code)
                await asyncio.sleep(1.0)
            await crowd
            assert len(await stored_order_ids(app_services)) == BEFORE, "stored while away?"
            await proxy.open()
            await asyncio.gather(*(shopper(f"after{n}", 1.0) for n in range(AFTER)))

            async def every_accepted_stored() -> bool:
                accepted = sum(1 for r in told.values() if r.status_code == 202)
                return len(await stored_order_ids(app_services)) >= accepted

            await eventually(every_accepted_stored)
            assert all(told[f"during{n}"].status_code == 202 for n in range(DURING))
            paid_after = await http.post(
                f"/api/v1/orders/{told['during0'].json()['order_id']}/pay",
                headers=auth.headers("during0"),
            )
    finally:
        for process in (api, worker):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        codes = [await process.wait() for process in (api, worker)]
        await proxy.cut()
    assert reads_during_cut, "no read was tried while Postgres was away"
    assert paid_after.status_code == 200, "an order accepted during the cut is payable"
    worker_log = (tmp_path / "worker.log").read_text()
    assert codes[1] == 0, worker_log
    assert "Traceback" not in worker_log

    accepted = {u: r.json()["order_id"] for u, r in told.items() if r.status_code == 202}
    refused = {u: r.json()["code"] for u, r in told.items() if r.status_code != 202}
    assert set(refused.values()) <= {"sold_out"}, refused
    assert len(accepted) == STOCK
    await assert_books_balance(app_services, item.id, allocated=STOCK, accepted=accepted)
