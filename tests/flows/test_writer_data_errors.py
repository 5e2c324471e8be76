"""Orders Postgres refuses on their data: the writer stores every other order, counts the
refusals per entry (not deliveries), dead-letters at the limit, and the audit says so."""

import asyncio
import dataclasses
from decimal import Decimal

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError

from app.container import Container
from app.events.models import EventItem
from app.events.schemas import MAX_ORDER_AMOUNT, ItemRead
from app.flows.audit import audit
from app.flows.audit_report import AuditReport, Check
from app.flows.writer import OrderWriter, is_data_error
from app.orders.models import Order
from app.store.coupon_keys import CouponKeys
from app.store.keys import ItemKeys
from tests.support.coupons import claim, create_coupon
from tests.support.factories import (
    Auth,
    assert_problem,
    buy,
    create_live_item,
    event_spec,
    item_spec,
    problem_fields,
)
from tests.support.orders import accept_orders, dead_letters, stored_order_ids
from tests.support.waiting import eventually

HUGE_PRICE = "9999999999.99"


def writer_for(services: Container, consumer: str = "writer-1", **overrides: object) -> OrderWriter:
    return OrderWriter(
        redis=services.redis,
        sessionmaker=services.sessionmaker,
        settings=services.settings.model_copy(update=overrides),
        consumer=consumer,
    )


async def _audit(services: Container, **settings: object) -> AuditReport:
    tuned = dataclasses.replace(services, settings=services.settings.model_copy(update=settings))
    return await audit(services=tuned)


def _checks(report: AuditReport) -> set[Check]:
    return {p.check for p in report.problems}


# -- the root cause: the API no longer accepts what the orders table cannot hold ----------


@pytest.mark.parametrize(
    ("price", "limit"),
    [(HUGE_PRICE, 2), ("5000000000.00", 2), ("10000000.00", 1000), ("9999999.99", 1001)],
)
async def test_an_item_whose_orders_could_not_be_stored_is_refused(
    client: httpx.AsyncClient, auth: Auth, price: str, limit: int
) -> None:
    spec = event_spec(
        items=[item_spec(list_price=price, seckill_price=price, per_user_limit=limit)]
    )
    response = await client.post("/api/v1/admin/events", json=spec, headers=auth.admin())
    body = assert_problem(response, 422, "validation_error")
    assert any(field.startswith("items") for field in problem_fields(body))
    assert (await client.get("/api/v1/events")).json() == []


@pytest.mark.parametrize(("price", "limit"), [(HUGE_PRICE, 1), ("4999999999.99", 2)])
async def test_the_largest_storable_orders_are_accepted_and_stored(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, price: str, limit: int
) -> None:
    item = await create_live_item(
        client, auth, list_price=price, seckill_price=price, per_user_limit=limit, stock=5
    )
    response = await buy(client, auth, item.id, quantity=limit)
    assert response.status_code == 202, response.text
    assert await writer_for(app_services).drain() == 1
    order = await client.get(f"/api/v1/orders/{response.json()['order_id']}", headers=auth.admin())
    assert order.json()["status"] == "pending_payment"
    assert Decimal(order.json()["amount"]) == Decimal(price) * limit <= MAX_ORDER_AMOUNT


# -- the writer: robust against data errors whatever their exception class -----------------


async def test_postgres_data_errors_are_told_from_outages(app_services: Container) -> None:
    async with app_services.sessionmaker() as session:
        for statement in (
            "SELECT CAST(1e11 AS numeric(12, 2))",  # 22003 numeric overflow
            "SELECT CAST('x' AS integer)",  # 22P02 bad cast
            "SELECT 1 / 0",  # 22012 division by zero
        ):
            with pytest.raises(DBAPIError) as raised:
                await session.execute(text(statement))
            await session.rollback()
            assert is_data_error(raised.value), statement
    assert not is_data_error(ConnectionRefusedError())
    assert not is_data_error(OSError("connection reset"))


async def _legacy_sale_with_an_unstorable_order(
    client: httpx.AsyncClient, auth: Auth, services: Container, redis: Redis
) -> tuple[ItemRead, str]:
    """A sale created before prices and limits were checked against the orders table:
    buying 2 at its price makes an order whose amount numeric(12, 2) cannot hold."""
    item = await create_live_item(
        client,
        auth,
        sku="LEGACY",
        list_price=HUGE_PRICE,
        seckill_price=HUGE_PRICE,
        per_user_limit=1,
        stock=10,
    )
    item_id = item.id
    async with services.sessionmaker() as session, session.begin():
        await session.execute(
            update(EventItem).where(EventItem.id == item_id).values(per_user_limit=2)
        )
    await redis.hset(ItemKeys(services.settings.redis_key_prefix, item_id).sale, "limit", 2)
    response = await buy(client, auth, item_id, user_id="whale", quantity=2)
    assert response.status_code == 202, response.text
    order_id: str = response.json()["order_id"]
    return item, order_id


async def test_one_unstorable_order_no_longer_stops_every_writer(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, redis: Redis
) -> None:
    """End to end through HTTP: the poison order is dead-lettered after a few refusals,
    every other order of every item is stored and can be paid, and the audit reports
    both the refusals while they happen and the dead letter after."""
    legacy, poison = await _legacy_sale_with_an_unstorable_order(client, auth, app_services, redis)
    other = await create_live_item(client, auth, sku="OTHER", stock=10)
    good = (await buy(client, auth, other.id, user_id="shopper-1")).json()["order_id"]
    same_item = (await buy(client, auth, legacy.id, user_id="minnow")).json()["order_id"]

    writers = [
        writer_for(app_services, f"writer-{n}", worker_max_failures=3,
                   worker_reclaim_idle_seconds=0.1)
        for n in range(2)
    ]  # fmt: skip
    stop = asyncio.Event()
    running = [asyncio.create_task(w.run(stop)) for w in writers]
    try:

        async def good_ones_stored() -> bool:
            return {good, same_item} <= set(await stored_order_ids(app_services))

        await eventually(good_ones_stored)
        paid = await client.post(
            f"/api/v1/orders/{good}/pay",
            json={"payment_token": "tok_ok"},
            headers=auth.headers("shopper-1"),
        )
        assert paid.status_code == 200, paid.text

        async def poison_dead_lettered() -> bool:
            return [d["order_id"] for d in await dead_letters(app_services)] == [poison]

        await eventually(poison_dead_lettered)
    finally:
        stop.set()
        await asyncio.gather(*running)

    letter = (await dead_letters(app_services))[0]
    assert letter["reason"].startswith("refused 3 times")
    assert "overflow" in letter["reason"]
    assert poison not in await stored_order_ids(app_services)
    keys = ItemKeys(app_services.settings.redis_key_prefix, legacy.id)
    assert await redis.hlen(keys.failures) == 0
    pending = await redis.xpending(keys.orders, app_services.settings.worker_group)
    assert pending["pending"] == 0
    report = await _audit(app_services)
    assert Check.DEAD_LETTER in _checks(report)
    assert Check.WRITER not in _checks(report), report.problems


async def test_the_audit_reports_an_entry_postgres_keeps_refusing(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, redis: Redis
) -> None:
    _legacy, poison = await _legacy_sale_with_an_unstorable_order(client, auth, app_services, redis)
    assert await writer_for(app_services, worker_max_failures=5).drain() == 0
    assert await dead_letters(app_services) == []

    report = await _audit(app_services)
    writer_problems = [p.detail for p in report.problems if p.check is Check.WRITER]
    assert len(writer_problems) == 1
    assert "refused by Postgres" in writer_problems[0]
    assert (await _audit(app_services)).ok is False
    assert poison not in await stored_order_ids(app_services)


async def test_the_audit_reports_a_writer_that_stores_nothing(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10)
    order_id = (await buy(client, auth, item.id)).json()["order_id"]
    # With no writer running, the order only waits: fine for a moment...
    assert (await _audit(app_services)).ok
    assert app_services.settings.audit_stuck_writer_seconds == 60

    # ...a problem once it has waited longer than the threshold.
    async def reported() -> bool:
        report = await _audit(app_services, audit_stuck_writer_seconds=0.05)
        return any(p.check is Check.WRITER and order_id in p.detail for p in report.problems)

    await eventually(reported)
    assert await writer_for(app_services).drain() == 1
    assert (await _audit(app_services, audit_stuck_writer_seconds=0.05)).ok


# -- failures, not deliveries -------------------------------------------------------------


async def test_an_entry_taken_over_many_times_is_stored_not_dead_lettered(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, redis: Redis
) -> None:
    """Writers that each took the entry over (an outage, restarts) do not count against
    it: the next writer stores it."""
    item = await create_live_item(client, auth, stock=10, per_user_limit=1)
    accepted = await accept_orders(app_services, item.id, 1)
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    group = app_services.settings.worker_group
    first = writer_for(app_services, "writer-0")
    await first.refresh_streams(force=True)
    [entry] = await first.read_new()
    for n in range(1, 8):  # seven more takeovers, none of them stored anything
        await redis.xclaim(keys.orders, group, f"writer-{n}", 0, [entry.entry_id])
    [pending] = await redis.xpending_range(keys.orders, group, min="-", max="+", count=10)
    assert pending["times_delivered"] == 8

    survivor = writer_for(
        app_services, "survivor", worker_max_failures=2, worker_reclaim_idle_seconds=0.01
    )
    await survivor.refresh_streams(force=True)

    async def reclaimed_and_stored() -> bool:
        if batch := await survivor.reclaim_stale():
            await survivor.process(batch, asyncio.Event())
        return set(await stored_order_ids(app_services)) == accepted

    await eventually(reclaimed_and_stored)
    assert await dead_letters(app_services) == []


async def test_refusals_are_counted_per_entry_and_cleared_once_stored(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, redis: Redis
) -> None:
    """An entry refused once (say, a constraint since fixed) keeps its count until it is
    stored; then the count goes."""
    item = await create_live_item(client, auth, stock=10, per_user_limit=1)
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    accepted = await accept_orders(app_services, item.id, 2)
    async with app_services.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "ALTER TABLE orders ADD CONSTRAINT ck_test_refuse CHECK (user_id <> 'u0') NOT VALID"
            )
        )
    writer = writer_for(app_services, worker_max_failures=3)
    assert await writer.drain() == 1
    assert list((await redis.hgetall(keys.failures)).values()) == ["1"]
    async with app_services.sessionmaker() as session, session.begin():
        await session.execute(text("ALTER TABLE orders DROP CONSTRAINT ck_test_refuse"))

    assert await writer.drain() == 1
    assert set(await stored_order_ids(app_services)) == accepted
    assert await redis.hlen(keys.failures) == 0
    assert await dead_letters(app_services) == []
    async with app_services.sessionmaker() as session:
        assert await session.scalar(text("SELECT count(*) FROM orders")) == 2
        assert (await session.get(Order, sorted(accepted)[0])) is not None


async def test_a_claim_refused_is_counted_beside_its_coupon_and_cleared_once_stored(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, redis: Redis
) -> None:
    """As for an order: the count lives in the coupon's own failures hash (CouponKeys)."""
    coupon = await create_coupon(client, auth, total_quantity=5, per_user_limit=1)
    keys = CouponKeys(app_services.settings.redis_key_prefix, coupon.id)
    for user_id in ("refused", "welcome"):
        assert (await claim(client, auth, coupon.id, user_id=user_id)).status_code == 201
    async with app_services.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "ALTER TABLE user_coupons ADD CONSTRAINT ck_test_refuse "
                "CHECK (user_id <> 'refused') NOT VALID"
            )
        )
    writer = writer_for(app_services, worker_max_failures=3)
    assert await writer.drain() == 1
    assert list((await redis.hgetall(keys.failures)).values()) == ["1"]
    async with app_services.sessionmaker() as session, session.begin():
        await session.execute(text("ALTER TABLE user_coupons DROP CONSTRAINT ck_test_refuse"))

    assert await writer.drain() == 1
    assert await redis.hlen(keys.failures) == 0
    assert await redis.xlen(keys.claims) == 0
    assert await dead_letters(app_services) == []
    async with app_services.sessionmaker() as session:
        assert await session.scalar(text("SELECT count(*) FROM user_coupons")) == 2
