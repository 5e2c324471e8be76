"""A sale where half the winners never pay: their units come back after the payment
timeout and go to shoppers who do pay, and the books balance all along."""

import asyncio
import random
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import func, select

from app.container import Container
from app.flows.writer import OrderWriter
from app.orders.models import Order
from app.orders.repository import LIVE_STATUSES
from tests.support.factories import Auth, buy, create_live_item
from tests.support.lifecycle import books, redis_bought, redis_stock, sweeper, transitions, until

STOCK = 20
PAYERS = 30
DAWDLERS = 30  # win if they can, never pay
RETRY_SECONDS = 0.02


@dataclass
class Tally:
    paid: dict[str, str] = field(default_factory=dict)  # payer -> order id
    abandoned: dict[str, str] = field(default_factory=dict)  # dawdler -> order id
    samples: list[int] = field(default_factory=list)  # live units seen at each sample
    lowest_remaining: int = STOCK


async def pay_until_settled(
    client: httpx.AsyncClient, headers: dict[str, str], order_id: str
) -> bool:
    """Pay, retrying while the order is still queued; False if it timed out first."""
    while True:
        response = await client.post(f"/api/v1/orders/{order_id}/pay", headers=headers)
        if response.status_code == 200:
            return True
        assert response.status_code == 409, response.text
        if "Retry-After" not in response.headers:
            return False  # cancelled by the timeout before we paid: buy again
        await asyncio.sleep(RETRY_SECONDS)


async def payer(
    client: httpx.AsyncClient,
    auth: Auth,
    item_id: int,
    user: str,
    tally: Tally,
    done: asyncio.Event,
) -> None:
    headers = auth.headers(user)
    while not done.is_set():
        response = await buy(client, auth, item_id, user_id=user)
        if response.status_code == 202:
            order_id = response.json()["order_id"]
            if await pay_until_settled(client, headers, order_id):
                tally.paid[user] = order_id
                return
            continue
        assert response.json()["code"] == "sold_out", response.text
        await asyncio.sleep(RETRY_SECONDS)


async def dawdler(
    client: httpx.AsyncClient, auth: Auth, item_id: int, user: str, tally: Tally
) -> None:
    response = await buy(client, auth, item_id, user_id=user)
    if response.status_code == 202:
        tally.abandoned[user] = response.json()["order_id"]


async def sample(services: Container, item_id: int, tally: Tally, stop: asyncio.Event) -> None:
    """Paid plus pending units in Postgres, and Redis's stock, while the sale runs."""
    while not stop.is_set():
        async with services.sessionmaker() as session:
            live = await session.scalar(
                select(func.coalesce(func.sum(Order.quantity), 0)).where(
                    Order.item_id == item_id, Order.status.in_(LIVE_STATUSES)
                )
            )
        tally.samples.append(int(live or 0))
        tally.lowest_remaining = min(tally.lowest_remaining, await redis_stock(services, item_id))
        await asyncio.sleep(0.01)


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings_overrides",
    [{"payment_timeout_seconds": 1, "timeout_sweep_interval_seconds": 0.05}],
)
async def test_unpaid_units_return_and_sell_to_payers(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=STOCK, per_user_limit=1)
    item_id = item.id
    shoppers = [f"payer{n}" for n in range(PAYERS)] + [f"dawdler{n}" for n in range(DAWDLERS)]
    random.Random(11).shuffle(shoppers)
    tally = Tally()
    done, stop = asyncio.Event(), asyncio.Event()
    writer = OrderWriter(
        redis=app_services.redis,
        sessionmaker=app_services.sessionmaker,
        settings=app_services.settings,
    )
    background = [
        asyncio.create_task(writer.run(stop)),
        asyncio.create_task(sweeper(app_services).run(stop)),
        asyncio.create_task(sample(app_services, item_id, tally, stop)),
    ]
    crowd = [
        asyncio.create_task(
            payer(client, auth, item_id, user, tally, done)
            if user.startswith("payer")
            else dawdler(client, auth, item_id, user, tally)
        )
        for user in shoppers
    ]
    try:
        await until(lambda: len(tally.paid) == STOCK)
        done.set()
        await asyncio.gather(*crowd)
        stop.set()
        await asyncio.gather(*background)
    finally:
        # On a failure, nothing may outlive the test (its connections least of all).
        done.set()
        stop.set()
        for task in crowd + background:
            task.cancel()
        await asyncio.gather(*crowd, *background, return_exceptions=True)
    await sweeper(app_services).drain()

    assert tally.abandoned, "some units went to shoppers who never paid"
    assert max(tally.samples) <= STOCK, "never more units held than allocated"
    assert tally.lowest_remaining >= 0
    for order_id in tally.abandoned.values():
        assert await transitions(app_services, order_id) == [
            ("pending_payment", "cancelled", "payment_timeout")
        ]
    summary = await books(app_services, item_id)
    # A payer too slow for the timeout loses that order too, and buys again.
    assert summary.by_status["paid"] == STOCK
    assert summary.by_status["cancelled"] >= len(tally.abandoned)
    assert summary.remaining == 0
    summary.assert_balanced()
    assert await redis_bought(app_services, item_id) == summary.live_by_user
    assert set(summary.live_by_user) == set(tally.paid)
