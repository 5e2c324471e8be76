"""The audit: a clean sale passes; each broken invariant is reported, and the CLI exits 1."""

import asyncio
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, update

from app.auth import User
from app.config import Settings
from app.container import Container
from app.flows.audit import audit
from app.flows.audit_report import AuditReport, Check
from app.flows.writer import OrderWriter
from app.inventory.models import StockMovement
from app.orders import returns_repository
from app.orders.models import Order, OrderStatus
from app.orders.release import ReturnTo, release_in_redis, return_stock
from app.orders.returns_repository import StockReturn
from app.store.keys import ItemKeys
from app.store.order_ids import new_order_id
from app.store.purchase import Outcome, purchase_script_call, run_purchase
from tests.support.factories import Auth, buy, create_event, create_live_item, item_spec
from tests.support.processes import settings_environment

STOCK = 10
LIMIT = 2


@dataclass(frozen=True)
class Sale:
    event_id: int
    item_id: int
    keys: ItemKeys
    # order id -> (user id, quantity), as accepted
    orders: dict[str, tuple[str, int]]


async def _accept(
    client: httpx.AsyncClient, auth: Auth, item_id: int, user: str, quantity: int = 1
) -> str:
    response = await buy(client, auth, item_id, user_id=user, quantity=quantity)
    assert response.status_code == 202, response.text
    order_id: str = response.json()["order_id"]
    return order_id


async def _drain(services: Container) -> int:
    writer = OrderWriter(
        redis=services.redis, sessionmaker=services.sessionmaker, settings=services.settings
    )
    return await writer.drain()


@pytest.fixture
async def sale(client: httpx.AsyncClient, auth: Auth, app_services: Container) -> Sale:
    """A live item with five accepted orders (7 units), none written to Postgres yet."""
    item = await create_live_item(client, auth, stock=STOCK, per_user_limit=LIMIT)
    orders: dict[str, tuple[str, int]] = {}
    for user, quantity in (("u1", 2), ("u2", 1), ("u3", 2), ("u4", 1), ("u5", 1)):
        orders[await _accept(client, auth, item.id, user, quantity)] = (user, quantity)
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    return Sale(event_id=item.event_id, item_id=item.id, keys=keys, orders=orders)


async def _first_entry(services: Container, keys: ItemKeys) -> tuple[str, dict[Any, Any]]:
    """The item stream's first entry (its fields typed to go back into XADD)."""
    reply = await services.redis.xrange(keys.orders, count=1)
    assert reply
    entry_id, fields = reply[0]
    assert entry_id is not None
    assert fields is not None
    return str(entry_id), {str(k): str(v) for k, v in fields.items()}


def _checks(report: AuditReport) -> set[Check]:
    return {p.check for p in report.problems}


async def test_a_clean_sale_passes_with_orders_still_in_the_stream(
    sale: Sale, app_services: Container
) -> None:
    report = await audit(services=app_services, event_id=sale.event_id)

    assert report.ok, report.problems
    (item,) = report.items
    assert (item.allocated, item.remaining, item.sold, item.in_stream) == (STOCK, 3, 0, 7)
    assert item.ledger_stock == STOCK


async def test_a_clean_sale_passes_once_written(sale: Sale, app_services: Container) -> None:
    assert await _drain(app_services) == len(sale.orders)

    report = await audit(services=app_services, event_id=sale.event_id)

    assert report.ok, report.problems
    (item,) = report.items
    assert (item.remaining, item.sold, item.in_stream, item.ledger_stock) == (3, 7, 0, 3)


async def test_a_sold_out_sale_passes(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=3, per_user_limit=LIMIT)
    for user in ("a", "b", "c"):
        await _accept(client, auth, item.id, user)
    refused = await buy(client, auth, item.id, user_id="d")
    assert refused.json()["code"] == "sold_out"
    await _drain(app_services)

    report = await audit(services=app_services, event_id=item.event_id)

    assert report.ok, report.problems
    assert report.items[0].remaining == 0


async def test_an_order_written_twice_by_a_redelivery_is_counted_once(
    sale: Sale, app_services: Container
) -> None:
    """The writer commits before it deletes the entry: both copies may exist for a moment."""
    _entry_id, fields = await _first_entry(app_services, sale.keys)
    await _drain(app_services)
    await app_services.redis.xadd(sale.keys.orders, fields)

    report = await audit(services=app_services, event_id=sale.event_id)

    assert Check.STOCK not in _checks(report)
    assert report.items[0].in_stream == 0


async def test_stock_changed_in_redis_is_reported(sale: Sale, app_services: Container) -> None:
    await app_services.redis.hincrby(sale.keys.sale, "stock", -1)

    report = await audit(services=app_services, event_id=sale.event_id)

    assert Check.STOCK in _checks(report)
    (stock,) = [p for p in report.problems if p.check is Check.STOCK]
    assert "-1 unit(s)" in stock.detail
    assert not report.ok


async def test_an_order_row_without_a_purchase_is_reported(
    sale: Sale, app_services: Container
) -> None:
    await _drain(app_services)
    now = datetime.now(UTC)
    async with app_services.sessionmaker() as session, session.begin():
        session.add(
            Order(
                id=new_order_id(sale.item_id),
                user_id="intruder",
                event_id=sale.event_id,
                item_id=sale.item_id,
                quantity=1,
                unit_price=Decimal("1999.00"),
                amount=Decimal("1999.00"),
                status=OrderStatus.PENDING_PAYMENT.value,
                accepted_at=now,
                payment_deadline=now,
            )
        )

    report = await audit(services=app_services, event_id=sale.event_id)

    # Oversold by one, no `sold` movement for it, and Redis never counted the buyer.
    assert {Check.STOCK, Check.LEDGER, Check.BUYER_COUNTS} <= _checks(report)
    assert report.items[0].sold == 8


async def test_a_duplicate_order_in_the_stream_is_reported(
    sale: Sale, app_services: Container
) -> None:
    _entry_id, fields = await _first_entry(app_services, sale.keys)
    await app_services.redis.xadd(sale.keys.orders, fields)

    report = await audit(services=app_services, event_id=sale.event_id)

    assert _checks(report) == {Check.DUPLICATE_ORDER}
    assert fields["order_id"] in report.problems[0].detail
    assert report.items[0].in_stream == 7, "a duplicate entry is one order"


async def test_an_idempotency_key_accepted_twice_is_reported(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=STOCK, per_user_limit=LIMIT)
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    first = await buy(client, auth, item.id, user_id="u1", idempotency_key="k-1")
    assert first.status_code == 202
    await _drain(app_services)
    # The idempotency record is gone (expired, say): the same retry takes stock again.
    await app_services.redis.delete(keys.idempotency("u1", "k-1"))
    second = await buy(client, auth, item.id, user_id="u1", idempotency_key="k-1")
    assert second.status_code == 202
    assert second.json()["order_id"] != first.json()["order_id"]

    report = await audit(services=app_services, event_id=item.event_id)

    assert _checks(report) == {Check.DUPLICATE_ORDER}
    assert "u1/k-1" in report.problems[0].detail


async def test_a_user_over_the_limit_is_reported(sale: Sale, app_services: Container) -> None:
    # Redis let u1 (holding 2) buy a third unit: its copy of the limit was wrong.
    await app_services.redis.hset(sale.keys.sale, "limit", LIMIT + 1)
    call = purchase_script_call(
        keys=sale.keys,
        user=User(id="u1"),
        quantity=1,
        order_id=new_order_id(sale.item_id),
        idempotency_key=None,
        idempotency_ttl_seconds=app_services.settings.idempotency_ttl_seconds,
    )
    reply = await run_purchase(app_services.scripts, call, client=app_services.redis)
    assert reply.outcome == Outcome.ACCEPTED
    await app_services.redis.hset(sale.keys.sale, "limit", LIMIT)

    report = await audit(services=app_services, event_id=sale.event_id)

    assert _checks(report) == {Check.PER_USER_LIMIT}
    assert "u1 holds 3" in report.problems[0].detail


async def test_a_missing_queued_mark_is_reported(sale: Sale, app_services: Container) -> None:
    order_id = next(iter(sale.orders))
    await app_services.redis.hdel(sale.keys.queued, order_id)

    report = await audit(services=app_services, event_id=sale.event_id)

    assert _checks(report) == {Check.QUEUED_MARKS}
    assert order_id in report.problems[0].detail


async def test_a_lost_sold_movement_is_reported(sale: Sale, app_services: Container) -> None:
    await _drain(app_services)
    order_id = next(iter(sale.orders))
    async with app_services.sessionmaker() as session, session.begin():
        await session.execute(delete(StockMovement).where(StockMovement.order_id == order_id))

    report = await audit(services=app_services, event_id=sale.event_id)

    assert _checks(report) == {Check.LEDGER}
    assert any(order_id in p.detail for p in report.problems)


async def test_a_dead_letter_is_reported(sale: Sale, app_services: Container) -> None:
    # The writer gives up on an entry: the order stays owed (counted in the stream).
    entry_id, fields = await _first_entry(app_services, sale.keys)
    await app_services.redis.xadd(
        app_services.keys.dead_orders,
        {**fields, "stream": sale.keys.orders, "entry_id": entry_id, "reason": "test"},
    )

    report = await audit(services=app_services, event_id=sale.event_id)

    assert _checks(report) == {Check.DEAD_LETTER}
    assert fields["order_id"] in report.problems[0].detail


async def test_a_live_sale_missing_from_redis_is_reported(
    sale: Sale, app_services: Container
) -> None:
    await app_services.redis.delete(sale.keys.sale)

    report = await audit(services=app_services, event_id=sale.event_id)

    assert Check.SALE_STATE in _checks(report)
    assert report.items[0].remaining is None


async def _cancel(client: httpx.AsyncClient, auth: Auth, sale: Sale, order_id: str) -> None:
    """The owner cancels through the API: the units come back (on sale, or on hand once
    the sale has ended) right after the commit."""
    user_id, _quantity = sale.orders[order_id]
    response = await client.post(f"/api/v1/orders/{order_id}/cancel", headers=auth.headers(user_id))
    assert response.status_code == 200, response.text


async def _end_sale(client: httpx.AsyncClient, auth: Auth, event_id: int) -> None:
    ended = await client.post(f"/api/v1/admin/events/{event_id}/end", headers=auth.admin())
    assert ended.status_code == 200, ended.text


async def test_cancelled_orders_released_or_restocked_keep_the_books(
    client: httpx.AsyncClient, auth: Auth, sale: Sale, app_services: Container
) -> None:
    await _drain(app_services)
    released, restocked = list(sale.orders)[:2]
    await _cancel(client, auth, sale, released)
    await _end_sale(client, auth, sale.event_id)
    await _cancel(client, auth, sale, restocked)

    report = await audit(services=app_services, event_id=sale.event_id)

    assert report.ok, report.problems
    (item,) = report.items
    released_units, restocked_units = sale.orders[released][1], sale.orders[restocked][1]
    assert item.remaining == 3 + released_units
    assert item.restocked == restocked_units
    assert item.sold == 7 - released_units - restocked_units
    assert item.owed == 0


async def _cancel_and_crash(services: Container, sale: Sale, order_id: str) -> StockReturn:
    """A cancellation committed by a process that died before giving the units back."""
    async with services.sessionmaker() as session, session.begin():
        await session.execute(
            update(Order)
            .where(Order.id == order_id)
            .values(status=OrderStatus.CANCELLED.value, cancelled_at=datetime.now(UTC))
        )
        (due,) = await returns_repository.stock_returns_due(session, [sale.item_id])
    return due


async def test_units_owed_a_return_are_in_flight_not_missing(
    sale: Sale, app_services: Container
) -> None:
    await _drain(app_services)
    order_id = next(iter(sale.orders))
    quantity = sale.orders[order_id][1]
    due = await _cancel_and_crash(app_services, sale, order_id)

    owed = await audit(services=app_services, event_id=sale.event_id)
    assert owed.ok, owed.problems
    assert (owed.items[0].owed, owed.items[0].sold) == (quantity, 7 - quantity)

    # Half way: Redis gave the units back, the ledger row is not booked yet.
    assert await release_in_redis(app_services, [due]) == {order_id: ReturnTo.SALE}
    half_way = await audit(services=app_services, event_id=sale.event_id)
    assert half_way.ok, half_way.problems
    assert (half_way.items[0].owed, half_way.items[0].remaining) == (0, 3 + quantity)

    await return_stock(services=app_services)
    returned = await audit(services=app_services, event_id=sale.event_id)
    assert returned.ok, returned.problems


async def test_a_return_marked_done_without_its_units_is_reported(
    sale: Sale, app_services: Container
) -> None:
    await _drain(app_services)
    order_id = next(iter(sale.orders))
    async with app_services.sessionmaker() as session, session.begin():
        await session.execute(
            update(Order)
            .where(Order.id == order_id)
            .values(status=OrderStatus.CANCELLED.value, stock_returned_at=datetime.now(UTC))
        )

    report = await audit(services=app_services, event_id=sale.event_id)

    # The units went neither back on sale nor on hand: the books are short.
    assert {Check.STOCK, Check.LEDGER} <= _checks(report)


async def test_every_event_is_audited_without_an_id(
    client: httpx.AsyncClient, auth: Auth, sale: Sale, app_services: Container
) -> None:
    other = await create_event(
        client, auth, items=[item_spec(sku="TV-1"), item_spec(sku="CAM-1", stock=5)]
    )
    await app_services.redis.hincrby(
        ItemKeys(app_services.settings.redis_key_prefix, other.items[1].id).sale, "stock", 1
    )

    report = await audit(services=app_services)

    assert set(report.event_ids) == {sale.event_id, other.id}
    assert len(report.items) == 3
    assert [i.item_id for i in report.items if not i.ok] == [other.items[1].id]


# -- the command -----------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    output: str


async def _run_audit(settings: Settings, *args: str) -> CommandResult:
    """`seckill audit` in a process of its own, as an operator runs it: the command owns
    its event loop, signal handlers and cached settings, none of which a test may share."""
    env = settings_environment(settings.model_copy(update={"log_level": "WARNING"}))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "audit", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    assert process.returncode is not None
    return CommandResult(exit_code=process.returncode, output=output.decode())


async def test_the_command_exits_0_on_a_clean_sale_and_1_once_broken(
    sale: Sale, app_services: Container, settings: Settings
) -> None:
    clean = await _run_audit(settings, str(sale.event_id))
    assert clean.exit_code == 0, clean.output
    assert "audit ok: 1 item(s) in 1 event(s)" in clean.output
    assert f"{sale.item_id}" in clean.output.splitlines()[1]

    await app_services.redis.hincrby(sale.keys.sale, "stock", 1)
    broken = await _run_audit(settings, str(sale.event_id))
    assert broken.exit_code == 1, broken.output
    assert f"[stock] item {sale.item_id}: allocated {STOCK}" in broken.output
    assert "audit FAILED" in broken.output

    everything = await _run_audit(settings)
    assert everything.exit_code == 1, everything.output


async def test_the_command_reports_dead_letters(
    sale: Sale, app_services: Container, settings: Settings
) -> None:
    await app_services.redis.xadd(
        app_services.keys.dead_orders, {"order_id": "junk", "reason": "unreadable entry"}
    )

    result = await _run_audit(settings, str(sale.event_id))

    assert result.exit_code == 1, result.output
    assert "[dead_letter]" in result.output
    assert "unreadable entry" in result.output


async def test_the_command_exits_2_for_an_unknown_event(settings: Settings) -> None:
    result = await _run_audit(settings, "999999")

    assert result.exit_code == 2
    assert "No event 999999" in result.output
