"""Mid-sale controls while Redis stalls (issue 17, cases 5 and 6): a change is in force
when the operator sees 200, or answers 503 `recovering` and changes nothing, in Postgres
or in Redis, even when the stalled script runs once Redis wakes up. A pause is part of
the versioned terms: a later change of an item never leaves Redis selling while the event
reads as paused."""

import asyncio
import signal
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.auth import User
from app.config import Settings
from app.container import Container
from app.events import controls
from app.events.schemas import ItemUpdate
from app.redis import as_text
from app.store.keys import ItemKeys
from tests.faults.books import until_redis_answers
from tests.support.factories import Auth, assert_problem, buy
from tests.support.factories import create_live_item as create_item
from tests.support.processes import start_cli
from tests.support.redis_servers import RedisServer
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults]

# Longer than the test settings' socket timeout (0.5 s): every call in between times out.
STALL_SECONDS = "2.5"


async def stalled(server: RedisServer) -> asyncio.Task[object]:
    """DEBUG SLEEP on the app's Redis: commands sent meanwhile run when it wakes."""
    stall = asyncio.create_task(server.command("DEBUG", "SLEEP", STALL_SECONDS))
    probe = server.client()
    try:
        while True:  # until the stall has begun: a PING no longer answers at once
            try:
                await asyncio.wait_for(probe.ping(), 0.1)
            except TimeoutError:
                return stall
            await asyncio.sleep(0.01)
    finally:
        await probe.aclose()


async def sale_field(services: Container, item_id: int, field: str) -> str | None:
    keys = ItemKeys(services.settings.redis_key_prefix, item_id)
    return as_text(await services.redis.hget(keys.sale, field))


async def unit_prices(services: Container, item_id: int) -> list[str]:
    keys = ItemKeys(services.settings.redis_key_prefix, item_id)
    entries = await services.redis.xrange(keys.orders) or []
    return [str(as_text((fields or {})["unit_price"])) for _, fields in entries]


async def actions(client: httpx.AsyncClient, auth: Auth) -> list[str]:
    log = await client.get("/api/v1/admin/audit-log", headers=auth.admin())
    return [entry["action"] for entry in log.json()]


@pytest.mark.parametrize(
    ("change", "field", "unchanged"),
    [
        ({"seckill_price": "5.00"}, "seckill_price", "10.00"),
        ({"per_user_limit": 1}, "per_user_limit", 3),
    ],
)
async def test_a_change_during_a_stall_answers_503_and_changes_nothing(
    own_client: httpx.AsyncClient,
    auth: Auth,
    own_services: Container,
    own_redis: RedisServer,
    change: dict[str, Any],
    field: str,
    unchanged: Any,
) -> None:
    item = await create_item(
        own_client, auth, list_price="20.00", seckill_price="10.00", per_user_limit=3
    )

    stall = await stalled(own_redis)
    answer = await own_client.patch(
        f"/api/v1/admin/items/{item.id}", json=change, headers=auth.admin()
    )
    await stall
    await until_redis_answers(own_services)

    assert_problem(answer, 503, "recovering")
    assert int(answer.headers["Retry-After"]) >= 1
    after = (await own_client.get(f"/api/v1/items/{item.id}")).json()
    assert after[field] == unchanged
    # The script sent before the stall ran when Redis woke, too late: it changed nothing.
    assert await sale_field(own_services, item.id, "price") == "10.00"
    assert await sale_field(own_services, item.id, "limit") == "3"
    assert (await buy(own_client, auth, item.id, user_id="a", quantity=2)).status_code == 202
    assert await unit_prices(own_services, item.id) == ["10.00"]
    assert await actions(own_client, auth) == ["event.create"]


def every_control(item_id: int, event_id: int) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(method, path, body) of each live control."""
    later = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    return [
        ("PATCH", f"/api/v1/admin/items/{item_id}", {"add_stock": 5}),
        ("PATCH", f"/api/v1/admin/items/{item_id}", {"seckill_price": "5.00", "add_stock": 1}),
        ("PATCH", f"/api/v1/admin/events/{event_id}", {"ends_at": later}),
        ("POST", f"/api/v1/admin/events/{event_id}/end", None),
        ("POST", f"/api/v1/admin/events/{event_id}/pause", None),
    ]


async def test_every_live_control_during_a_stall_answers_503_and_changes_nothing(
    own_client: httpx.AsyncClient, auth: Auth, own_services: Container, own_redis: RedisServer
) -> None:
    sku = {"sku": "PHONE-1", "name": "Phone", "on_hand": 110}
    created = await own_client.post("/api/v1/admin/skus", json=sku, headers=auth.admin())
    assert created.status_code == 201, created.text
    item = await create_item(own_client, auth, list_price="20.00", seckill_price="10.00")
    event_before = (await own_client.get(f"/api/v1/events/{item.event_id}")).json()
    keys = ItemKeys(own_services.settings.redis_key_prefix, item.id)
    sale_before = await own_services.redis.hgetall(keys.sale)

    for method, path, body in every_control(item.id, item.event_id):
        stall = await stalled(own_redis)
        answer = await own_client.request(method, path, json=body, headers=auth.admin())
        await stall
        await until_redis_answers(own_services)

        assert_problem(answer, 503, "recovering")
        assert (await own_client.get(f"/api/v1/events/{item.event_id}")).json() == event_before
        assert await own_services.redis.hgetall(keys.sale) == sale_before, (method, path)
    assert await actions(own_client, auth) == ["event.create"]
    after = (await own_client.get("/api/v1/admin/skus/PHONE-1", headers=auth.admin())).json()
    assert after["on_hand"] == 10, "no allocation booked"


async def test_the_worker_undoes_a_change_whose_commit_failed(
    own_client: httpx.AsyncClient,
    auth: Auth,
    own_services: Container,
    own_settings: Settings,
    tmp_path: Path,
) -> None:
    """Redis took the change (before the commit, as always), then the commit failed: the
    worker puts Postgres's terms back in force."""
    item = await create_item(own_client, auth, list_price="20.00", seckill_price="10.00")
    settings = own_settings.model_copy(update={"worker_terms_check_seconds": 0.1})
    log = tmp_path / "worker.log"
    worker = await start_cli(settings, "worker", log=log)
    try:
        async with own_services.sessionmaker() as session:
            await controls.update_item(
                session=session,
                services=own_services,
                actor=User(id="operator", is_admin=True),
                item_id=item.id,
                data=ItemUpdate(seckill_price=Decimal("5.00")),
                now=datetime.now(UTC),
            )
            await session.rollback()
        assert await sale_field(own_services, item.id, "price") == "5.00"

        async def restored() -> bool:
            return await sale_field(own_services, item.id, "price") == "10.00"

        await eventually(restored)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert await worker.wait() == 0, log.read_text()
    assert "re-applied" in log.read_text()
    assert (await buy(own_client, auth, item.id)).status_code == 202
    assert await unit_prices(own_services, item.id) == ["10.00"]


async def test_a_change_after_the_stall_is_in_force_at_200(
    own_client: httpx.AsyncClient, auth: Auth, own_services: Container, own_redis: RedisServer
) -> None:
    item = await create_item(own_client, auth, list_price="20.00", seckill_price="10.00")
    stall = await stalled(own_redis)
    refused = await own_client.patch(
        f"/api/v1/admin/items/{item.id}", json={"seckill_price": "5.00"}, headers=auth.admin()
    )
    await stall
    await until_redis_answers(own_services)
    assert_problem(refused, 503, "recovering")

    # The operator retries, as Retry-After says: now it is in force the moment it answers.
    answer = await own_client.patch(
        f"/api/v1/admin/items/{item.id}", json={"seckill_price": "5.00"}, headers=auth.admin()
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["seckill_price"] == "5.00"
    assert await sale_field(own_services, item.id, "price") == "5.00"
    assert (await buy(own_client, auth, item.id)).status_code == 202
    assert await unit_prices(own_services, item.id) == ["5.00"]


async def test_a_pause_during_a_stall_is_all_or_nothing_even_after_an_item_change(
    own_client: httpx.AsyncClient, auth: Auth, own_services: Container, own_redis: RedisServer
) -> None:
    """The issue's case 6: the pause committed, Redis missed it, then a PATCH of an item
    raised the terms version without the pause; purchases went on while GET said paused."""
    item = await create_item(own_client, auth, list_price="20.00", seckill_price="10.00")

    stall = await stalled(own_redis)
    pause = await own_client.post(
        f"/api/v1/admin/events/{item.event_id}/pause", headers=auth.admin()
    )
    await stall
    await until_redis_answers(own_services)
    patched = await own_client.patch(
        f"/api/v1/admin/items/{item.id}", json={"seckill_price": "9.00"}, headers=auth.admin()
    )

    assert_problem(pause, 503, "recovering")
    assert patched.status_code == 200, patched.text
    event = (await own_client.get(f"/api/v1/events/{item.event_id}")).json()
    assert event["paused"] is False
    assert await sale_field(own_services, item.id, "paused") == "0"
    assert (await buy(own_client, auth, item.id)).status_code == 202

    # And paused for real: the pause and a later item change leave the sale paused.
    paused = await own_client.post(
        f"/api/v1/admin/events/{item.event_id}/pause", headers=auth.admin()
    )
    assert paused.status_code == 200, paused.text
    again = await own_client.patch(
        f"/api/v1/admin/items/{item.id}", json={"per_user_limit": 1}, headers=auth.admin()
    )
    assert again.status_code == 200, again.text
    assert again.json()["state"] == "paused"
    assert await sale_field(own_services, item.id, "paused") == "1"
    assert_problem(await buy(own_client, auth, item.id, user_id="b"), 409, "paused")
