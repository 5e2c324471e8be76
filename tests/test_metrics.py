"""Metrics across processes: the worker's own /metrics and /healthz (orders written are
counted where they are written), and `serve --workers 2` summing its processes."""

import asyncio
import re
import socket
from pathlib import Path

import httpx
import pytest

from app.container import Container
from tests.support.factories import Auth, create_event, event_spec, item_spec
from tests.support.lifecycle import bought
from tests.support.processes import start_cli
from tests.support.waiting import eventually


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def sample(body: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", body, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def answering(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as probe:
            return (await probe.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.slow
async def test_the_worker_serves_its_own_metrics_and_health(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, tmp_path: Path
) -> None:
    port = free_port()
    item = (await create_event(client, auth, items=[item_spec(stock=10)])).items[0]
    worker = await start_cli(
        app_services.settings, "worker", "--metrics-port", str(port), log=tmp_path / "w.log"
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await eventually(lambda: answering(f"{base}/healthz"))
        for user in ("a", "b", "c"):
            await bought(client, auth, item.id, user_id=user)

        async def written() -> bool:
            async with httpx.AsyncClient() as probe:
                body = (await probe.get(f"{base}/metrics")).text
            return sample(body, "seckill_orders_written_total") == 3

        await eventually(written)
        async with httpx.AsyncClient() as probe:
            assert (await probe.get(f"{base}/healthz")).json() == {"status": "ok"}
            assert (await probe.get(f"{base}/nope")).status_code == 404
            assert (await probe.post(f"{base}/metrics")).status_code == 405
    finally:
        worker.terminate()
        await worker.wait()


@pytest.mark.slow
async def test_two_api_processes_count_together(
    auth: Auth, app_services: Container, tmp_path: Path
) -> None:
    port = free_port()
    api = await start_cli(
        app_services.settings,
        "serve",
        "--port",
        str(port),
        "--workers",
        "2",
        log=tmp_path / "api.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await eventually(lambda: answering(f"{base}/healthz"))
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            event = (
                await http.post(
                    "/api/v1/admin/events",
                    json=event_spec(items=[item_spec(stock=100, per_user_limit=1)]),
                    headers=auth.admin(),
                )
            ).json()
            item_id = event["items"][0]["id"]
            # New connections each time: uvicorn's processes share the accepting socket.
            for n in range(20):
                async with httpx.AsyncClient(base_url=base) as once:
                    response = await once.post(
                        f"/api/v1/items/{item_id}/purchase", headers=auth.headers(f"m{n}")
                    )
                    assert response.status_code == 202, response.text
            scrapes = []
            for _ in range(6):
                async with httpx.AsyncClient(base_url=base) as once:
                    body = (await once.get("/metrics")).text
                scrapes.append(sample(body, 'seckill_purchases_total{outcome="accepted"}'))
        assert scrapes == [20.0] * 6, (scrapes, (tmp_path / "api.log").read_text()[-2000:])
    finally:
        api.terminate()
        await asyncio.wait_for(api.wait(), 30)
