"""`seckill orders ...` and the operators' event list: filtered, paged, through the same
services as the admin API."""

from pathlib import Path

import httpx

from app.container import Container
from tests.support.factories import Auth, assert_problem, create_live_item
from tests.support.lifecycle import order_row, stored_order
from tests.support.processes import start_cli

RUNS = iter(range(1_000_000))


async def run(services: Container, tmp_path: Path, *args: str) -> tuple[int, str]:
    log = tmp_path / f"cli-{next(RUNS)}.log"
    process = await start_cli(services.settings, *args, log=log)
    code = await process.wait()
    return code, log.read_text()


async def test_orders_commands(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, tmp_path: Path
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=2)
    ids = [
        await stored_order(client, auth, app_services, item.id, user_id=f"u{n}") for n in range(3)
    ]
    paid = await client.post(f"/api/v1/orders/{ids[0]}/pay", headers=auth.headers("u0"))
    assert paid.status_code == 200

    code, first_page = await run(
        app_services, tmp_path, "orders", "list", "--item", str(item.id), "--limit", "2"
    )
    assert code == 0, first_page
    lines = first_page.strip().splitlines()
    assert [line.split("\t")[0] for line in lines[:2]] == [ids[2], ids[1]]
    assert lines[-1] == f"next page: --cursor {ids[1]}"
    code, second_page = await run(
        app_services, tmp_path, "orders", "list", "--item", str(item.id), "--cursor", ids[1]
    )
    assert [line.split("\t")[0] for line in second_page.strip().splitlines()] == [ids[0]]
    code, only_paid = await run(app_services, tmp_path, "orders", "list", "--status", "paid")
    assert [line.split("\t")[0] for line in only_paid.strip().splitlines()] == [ids[0]]

    code, shown = await run(app_services, tmp_path, "orders", "show", ids[0])
    assert code == 0, shown
    assert f'"id": "{ids[0]}"' in shown

    code, cancelled = await run(app_services, tmp_path, "orders", "cancel", ids[1])
    assert code == 0, cancelled
    code, refunded = await run(app_services, tmp_path, "orders", "refund", ids[0])
    assert code == 0, refunded
    assert (await order_row(app_services, ids[1])).status == "cancelled"
    assert (await order_row(app_services, ids[0])).status == "refunded"

    code, again = await run(app_services, tmp_path, "orders", "cancel", ids[1])
    assert code == 1
    assert again.strip().splitlines()[-1].startswith("invalid_state: ")
    assert "Traceback" not in again


async def test_the_operators_event_list_filters_by_window_and_pause(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, tmp_path: Path
) -> None:
    running = await create_live_item(client, auth, sku="A-1", stock=5)
    held = await create_live_item(client, auth, sku="B-1", stock=5)
    pause = await client.post(f"/api/v1/admin/events/{held.event_id}/pause", headers=auth.admin())
    assert pause.status_code == 200

    listed = await client.get("/api/v1/admin/events?state=live&paused=true", headers=auth.admin())
    assert [e["id"] for e in listed.json()] == [held.event_id]
    listed = await client.get("/api/v1/admin/events?paused=false", headers=auth.admin())
    assert [e["id"] for e in listed.json()] == [running.event_id]
    assert_problem(
        await client.get("/api/v1/admin/events", headers=auth.headers()), 403, "forbidden"
    )
    assert_problem(await client.get("/api/v1/admin/events"), 401, "unauthorized")

    code, out = await run(app_services, tmp_path, "event", "list", "--paused")
    assert code == 0, out
    assert [line.split("\t")[0] for line in out.strip().splitlines()] == [str(held.event_id)]
