"""Helpers for the order-lifecycle tests: stored orders, overdue orders, and the books of
an item (Redis, the orders and the ledger) to check the stock identities against."""

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select, text

from app.container import Container
from app.flows.freshness import FAMILIES, Finding, check_once, recover
from app.flows.timeouts import TimeoutSweeper
from app.flows.writer import OrderWriter
from app.inventory.models import MovementReason, Sku, StockMovement
from app.orders.models import Order, OrderTransition
from app.orders.repository import LIVE_STATUSES
from app.redis import as_text
from app.store.keys import ItemKeys
from tests.support.factories import Auth, buy, create_event, item_spec
from tests.support.waiting import eventually


async def until(condition: Callable[[], bool]) -> None:
    """Wait for something another task or process does (never a timing assertion)."""

    async def holds() -> bool:
        return condition()

    await eventually(holds)


async def wait_past(moment: datetime) -> None:
    """Sleep until our clock has passed `moment` (a sale's end, say)."""
    await asyncio.sleep(max((moment - datetime.now(UTC)).total_seconds(), 0) + 0.05)


async def store_orders(services: Container) -> int:
    """Move every accepted order from Redis into Postgres, as the worker would."""
    writer = OrderWriter(
        redis=services.redis, sessionmaker=services.sessionmaker, settings=services.settings
    )
    return await writer.drain()


async def bought(
    client: httpx.AsyncClient,
    auth: Auth,
    item_id: int,
    *,
    user_id: str = "shopper-1",
    quantity: int = 1,
    member: bool = False,
) -> str:
    """Buy through the API (`member`: with a member's token); the accepted order's id
    (still queued)."""
    response = await buy(client, auth, item_id, user_id=user_id, quantity=quantity, member=member)
    assert response.status_code == 202, response.text
    order_id: str = response.json()["order_id"]
    return order_id


async def stored_order(
    client: httpx.AsyncClient,
    auth: Auth,
    services: Container,
    item_id: int,
    *,
    user_id: str = "shopper-1",
    quantity: int = 1,
    member: bool = False,
) -> str:
    """Buy through the API and store the order: it is `pending_payment`."""
    order_id = await bought(
        client, auth, item_id, user_id=user_id, quantity=quantity, member=member
    )
    await store_orders(services)
    return order_id


async def wait_until_overdue(services: Container) -> None:
    """Until every pending order is past its payment deadline (by Postgres's clock)."""

    async def none_waiting() -> bool:
        async with services.sessionmaker() as session:
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM orders "
                    "WHERE status = 'pending_payment' AND payment_deadline > now()"
                )
            )
        return not waiting

    await eventually(none_waiting)


def sweeper(services: Container) -> TimeoutSweeper:
    return TimeoutSweeper(services=services)


async def order_row(services: Container, order_id: str) -> Order:
    async with services.sessionmaker() as session:
        row = await session.get(Order, order_id)
    assert row is not None, order_id
    return row


async def transitions(services: Container, order_id: str) -> list[tuple[str, str, str]]:
    """(from, to, cause) of each status change of the order, in order."""
    async with services.sessionmaker() as session:
        rows = await session.execute(
            select(OrderTransition.from_status, OrderTransition.to_status, OrderTransition.cause)
            .where(OrderTransition.order_id == order_id)
            .order_by(OrderTransition.id)
        )
    return [(f, t, c) for f, t, c in rows]


async def returns_of(services: Container, order_id: str) -> list[tuple[str, int, int]]:
    """(reason, on_hand_delta, item_stock_delta) of the order's released/restocked rows."""
    async with services.sessionmaker() as session:
        rows = await session.execute(
            select(
                StockMovement.reason, StockMovement.on_hand_delta, StockMovement.item_stock_delta
            )
            .where(
                StockMovement.order_id == order_id,
                StockMovement.reason.in_(
                    [MovementReason.RELEASED.value, MovementReason.RESTOCKED.value]
                ),
            )
            .order_by(StockMovement.id)
        )
    return [(r, h, s) for r, h, s in rows]


async def redis_stock(services: Container, item_id: int) -> int:
    stock = await services.redis.hget(
        ItemKeys(services.settings.redis_key_prefix, item_id).sale, "stock"
    )
    assert stock is not None
    return int(stock)


async def redis_bought(services: Container, item_id: int) -> dict[str, int]:
    keys = ItemKeys(services.settings.redis_key_prefix, item_id)
    counts = await services.redis.hgetall(keys.buyers)
    return {str(as_text(user)): int(units) for user, units in counts.items()}


async def released_set(services: Container, item_id: int) -> set[str]:
    keys = ItemKeys(services.settings.redis_key_prefix, item_id)
    return {str(as_text(order_id)) for order_id in await services.redis.smembers(keys.released)}


async def on_hand(services: Container, sku: str) -> int:
    async with services.sessionmaker() as session:
        level = await session.scalar(select(Sku.on_hand).where(Sku.sku == sku))
    assert level is not None
    return level


@dataclass(frozen=True, slots=True)
class Books:
    """One item's stock as Redis, the orders and the ledger tell it."""

    allocated: int  # the item's `allocated` ledger row
    remaining: int  # Redis stock
    live: int  # units of pending_payment and paid orders
    restocked: int  # units of cancelled/refunded orders sent back on hand
    owed: int  # units of cancelled/refunded orders whose return has not happened yet
    ledger_stock: int  # sum(item_stock_delta) over the item's ledger rows
    live_by_user: dict[str, int]
    by_status: dict[str, int]  # order count per status

    def assert_balanced(self) -> None:
        """The identities the audit checks, with every return done."""
        assert self.owed == 0, self
        assert self.allocated == self.remaining + self.live + self.restocked, self
        assert self.ledger_stock == self.remaining, self


async def books(services: Container, item_id: int) -> Books:
    async with services.sessionmaker() as session:
        ledger = (
            await session.execute(
                select(
                    func.coalesce(
                        func.sum(StockMovement.item_stock_delta).filter(
                            StockMovement.reason == MovementReason.ALLOCATED.value
                        ),
                        0,
                    ),
                    func.coalesce(
                        func.sum(StockMovement.on_hand_delta).filter(
                            StockMovement.reason == MovementReason.RESTOCKED.value
                        ),
                        0,
                    ),
                    func.coalesce(func.sum(StockMovement.item_stock_delta), 0),
                ).where(StockMovement.item_id == item_id)
            )
        ).one()
        orders = (
            await session.execute(
                select(Order.user_id, Order.status, Order.quantity, Order.stock_returned_at).where(
                    Order.item_id == item_id
                )
            )
        ).all()
    live_by_user = Counter[str]()
    owed = 0
    for user_id, status, quantity, returned_at in orders:
        if status in LIVE_STATUSES:
            live_by_user[user_id] += quantity
        elif returned_at is None:
            owed += quantity
    return Books(
        allocated=int(ledger[0]),
        remaining=await redis_stock(services, item_id),
        live=sum(live_by_user.values()),
        restocked=int(ledger[1]),
        owed=owed,
        ledger_stock=int(ledger[2]),
        live_by_user=dict(live_by_user),
        by_status=dict(Counter(status for _, status, _, _ in orders)),
    )


async def closing_sale(
    client: httpx.AsyncClient, auth: Auth, *, sku: str, stock: int, per_user_limit: int
) -> tuple[int, datetime]:
    """A live sale of one item that ends in two seconds: (item id, its end)."""
    ends_at = datetime.now(UTC) + timedelta(seconds=2)
    event = await create_event(
        client,
        auth,
        starts_in=timedelta(seconds=-60),
        lasts=timedelta(seconds=62),
        items=[item_spec(sku=sku, stock=stock, per_user_limit=per_user_limit)],
    )
    item_id: int = event.items[0].id
    return item_id, ends_at


async def rebuild_and_resume(services: Container) -> list[Finding]:
    """The hot-store check, then `seckill recover` for whatever it left frozen: an
    operator's whole answer to a Redis that lost data."""
    found = await check_once(services)
    prefix = services.settings.redis_key_prefix
    for finding in found:
        family = next(f for f in FAMILIES if f.name == finding.family)
        await recover(services.redis, prefix, family, finding.entity_id)
    return found
