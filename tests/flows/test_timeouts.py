"""The payment-timeout sweep: unpaid orders past their deadline are cancelled in batches,
once each, and their units come back, even across a worker killed mid-sweep."""

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from app.config import Settings
from app.container import Container
from app.inventory.models import StockMovement
from app.orders.models import Order, OrderTransition
from app.redis import as_text
from app.store.keys import ItemKeys
from app.store.records import parse_queued
from tests.support.factories import Auth, buy, create_live_item
from tests.support.lifecycle import (
    books,
    bought,
    order_row,
    redis_bought,
    redis_stock,
    released_set,
    returns_of,
    store_orders,
    stored_order,
    sweeper,
    transitions,
    until,
    wait_until_overdue,
)
from tests.support.processes import settings_environment
from tests.support.waiting import WAIT_SECONDS, eventually

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHORT_TIMEOUT = {"payment_timeout_seconds": 1}


@pytest.mark.parametrize("settings_overrides", [SHORT_TIMEOUT])
async def test_overdue_orders_are_cancelled_and_paid_ones_kept(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=3)
    unpaid = await stored_order(client, auth, app_services, item.id, user_id="u1", quantity=3)
    paid = await stored_order(client, auth, app_services, item.id, user_id="u2", quantity=2)
    assert (await client.post(f"/api/v1/orders/{paid}/pay", headers=auth.headers("u2"))).is_success
    await wait_until_overdue(app_services)

    result = await sweeper(app_services).sweep_once()

    assert (result.cancelled, result.returned) == (1, 1)
    row = await order_row(app_services, unpaid)
    assert (row.status, row.cancelled_at is not None) == ("cancelled", True)
    assert await transitions(app_services, unpaid) == [
        ("pending_payment", "cancelled", "payment_timeout")
    ]
    assert (await order_row(app_services, paid)).status == "paid"
    assert await returns_of(app_services, unpaid) == [("released", 0, 3)]
    assert await redis_stock(app_services, item.id) == 8
    assert await redis_bought(app_services, item.id) == {"u2": 2}
    read = await client.get(f"/api/v1/orders/{unpaid}", headers=auth.headers("u1"))
    assert read.json()["status"] == "cancelled"
    assert (await sweeper(app_services).sweep_once()).cancelled == 0


async def test_orders_within_their_deadline_are_left_alone(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10)
    order_id = await stored_order(client, auth, app_services, item.id)

    result = await sweeper(app_services).drain()

    assert (result.cancelled, result.returned) == (0, 0)
    assert (await order_row(app_services, order_id)).status == "pending_payment"


@pytest.mark.parametrize("settings_overrides", [{**SHORT_TIMEOUT, "timeout_sweep_batch_size": 7}])
async def test_the_sweep_works_in_batches_until_nothing_is_overdue(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=30, per_user_limit=1)
    orders = [await bought(client, auth, item.id, user_id=f"u{n}") for n in range(30)]
    await store_orders(app_services)
    await wait_until_overdue(app_services)
    sweep = sweeper(app_services)

    first = await sweep.sweep_once()
    assert (first.cancelled, first.returned, first.busy) == (7, 7, True)
    rest = await sweep.drain()

    assert rest.cancelled == 23
    assert {(await order_row(app_services, o)).status for o in orders} == {"cancelled"}
    assert await released_set(app_services, item.id) == set(orders)
    assert await redis_stock(app_services, item.id) == 30
    (await books(app_services, item.id)).assert_balanced()


@pytest.mark.parametrize(
    "settings_overrides", [{**SHORT_TIMEOUT, "timeout_sweep_interval_seconds": 0.05}]
)
async def test_the_running_sweep_stops_when_told(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await stored_order(client, auth, app_services, item.id)
    stop = asyncio.Event()
    sweep = sweeper(app_services)
    running = asyncio.create_task(sweep.run(stop))
    try:
        await wait_until_overdue(app_services)
        await until(lambda: sweep.returned >= 1)
    finally:
        stop.set()
        await running

    assert (await order_row(app_services, order_id)).status == "cancelled"
    assert await redis_stock(app_services, item.id) == 5


# -- a worker killed mid-sweep --------------------------------------------------------

RESTART_ORDERS = 2000
RESTART_USERS = 20
RESTART_BATCH = 5


def worker_environment(settings: Settings) -> dict[str, str]:
    """The test's settings for a worker process, with small sweep batches so a kill lands
    in the middle of the work."""
    return settings_environment(
        settings.model_copy(
            update={
                "timeout_sweep_batch_size": RESTART_BATCH,
                "timeout_sweep_interval_seconds": 0.05,
                "worker_consumer": f"{settings.worker_consumer}-process",
                "log_level": "WARNING",
            }
        )
    )


@contextlib.asynccontextmanager
async def worker_process(
    settings: Settings, log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`seckill worker` as its own process; killed on the way out if still running."""
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app.cli",
            "worker",
            env=worker_environment(settings),
            cwd=PROJECT_ROOT,
            stdout=output,
            stderr=output,
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def count(services: Container, sql: str) -> int:
    async with services.sessionmaker() as session:
        return int(await session.scalar(text(sql)) or 0)


async def wait_for(services: Container, sql: str, predicate: Callable[[int], bool]) -> int:
    """Poll a count until it satisfies `predicate`; returns that count."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            found = await count(services, sql)
            if predicate(found):
                return found
            await asyncio.sleep(0.005)


CANCELLED = "SELECT count(*) FROM orders WHERE status = 'cancelled'"
UNSETTLED = (
    "SELECT count(*) FROM orders WHERE status = 'pending_payment' "
    "OR (status = 'cancelled' AND stock_returned_at IS NULL)"
)


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.parametrize("settings_overrides", [SHORT_TIMEOUT])
async def test_a_worker_killed_mid_sweep_is_finished_by_the_next_one(
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    settings: Settings,
    tmp_path: Path,
) -> None:
    per_user = RESTART_ORDERS // RESTART_USERS
    item = await create_live_item(client, auth, stock=RESTART_ORDERS, per_user_limit=per_user)
    for _ in range(per_user):
        responses = await asyncio.gather(
            *[buy(client, auth, item.id, user_id=f"u{n}") for n in range(RESTART_USERS)]
        )
        assert {r.status_code for r in responses} == {202}
    assert await store_orders(app_services) == RESTART_ORDERS
    await wait_until_overdue(app_services)
    log = tmp_path / "worker.log"

    async with worker_process(settings, log) as first:
        at_kill = await wait_for(app_services, CANCELLED, lambda n: n >= RESTART_ORDERS // 4)
        first.send_signal(signal.SIGKILL)
        await first.wait()
    async with worker_process(settings, log) as second:
        await wait_for(app_services, UNSETTLED, lambda n: n == 0)
        second.send_signal(signal.SIGTERM)
        exit_code = await second.wait()

    assert at_kill < RESTART_ORDERS, "the first worker was killed before it finished"
    assert exit_code == 0, log.read_text()
    async with app_services.sessionmaker() as session:
        per_order = (
            await session.execute(
                select(
                    func.count(OrderTransition.id),
                    func.count(OrderTransition.id).filter(
                        OrderTransition.cause == "payment_timeout"
                    ),
                ).group_by(OrderTransition.order_id)
            )
        ).all()
        statuses = set((await session.scalars(select(Order.status))).all())
        released_rows = (
            await session.execute(
                select(StockMovement.order_id, func.count())
                .where(StockMovement.reason == "released")
                .group_by(StockMovement.order_id)
            )
        ).all()
    assert statuses == {"cancelled"}
    assert len(per_order) == RESTART_ORDERS
    assert set(per_order) == {(1, 1)}, "every order cancelled exactly once, by the timeout"
    assert len(released_rows) == RESTART_ORDERS
    assert {n for _, n in released_rows} == {1}, "one released row per order"
    assert await redis_stock(app_services, item.id) == RESTART_ORDERS
    assert len(await released_set(app_services, item.id)) == RESTART_ORDERS
    assert await redis_bought(app_services, item.id) == {}
    (await books(app_services, item.id)).assert_balanced()


@pytest.mark.parametrize("settings_overrides", [SHORT_TIMEOUT])
async def test_an_order_stored_after_its_acceptance_plus_the_timeout_gets_the_full_window(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=3)
    late = await bought(client, auth, item.id, user_id="u1")

    accepted_at = await accepted(app_services, item.id, late)

    async def timeout_passed_since_acceptance() -> bool:
        async with app_services.sessionmaker() as session:
            return bool(
                await session.scalar(
                    text("SELECT now() > CAST(:accepted_at AS timestamptz) + interval '1 second'"),
                    {"accepted_at": accepted_at},
                )
            )

    await eventually(timeout_passed_since_acceptance)  # the writer was held up that long
    await store_orders(app_services)
    row = await order_row(app_services, late)
    assert row.payment_deadline >= row.created_at + timedelta(seconds=1)

    result = await sweeper(app_services).sweep_once()

    assert result.cancelled == 0, "cancelled the moment it became payable"
    paid = await client.post(f"/api/v1/orders/{late}/pay", headers=auth.headers("u1"))
    assert paid.status_code == 200, paid.text


async def accepted(services: Container, item_id: int, order_id: str) -> datetime:
    """The queued order's acceptance, from its record in Redis."""
    keys = ItemKeys(services.settings.redis_key_prefix, item_id)
    record = as_text(await services.redis.hget(keys.queued, order_id))
    assert record is not None
    return parse_queued(order_id, item_id, record).accepted_at
