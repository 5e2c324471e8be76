"""Points under a crowd of payments and refunds: hundreds of orders of a few users (half of
them members) paid (twice, and notified by the gateway at once) and refunded (twice)
concurrently through the API; each user's balance equals the sum of their entries and
what their orders earned."""

import asyncio
from collections import Counter
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import text

from app.container import Container
from app.gateways.payment import SimulatedGateway
from tests.support.factories import Auth, create_live_item
from tests.support.lifecycle import bought, store_orders
from tests.support.members import my_points, point_books
from tests.support.payments import notification, notify, pay, refund

USERS = 20
ORDERS_PER_USER = 12
PRICE, POINTS = "12.75", 12


@pytest.mark.slow
async def test_points_under_concurrent_pay_and_refund(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(
        client,
        auth,
        stock=USERS * ORDERS_PER_USER,
        per_user_limit=ORDERS_PER_USER,
        seckill_price=PRICE,
    )
    users = [f"crowd{n}" for n in range(USERS)]
    members = set(users[::2])  # their orders earn times the multiplier
    multiplier = app_services.settings.member_points_multiplier
    owners = {
        await bought(client, auth, item.id, user_id=user, member=user in members): user
        for user in users
        for _ in range(ORDERS_PER_USER)
    }
    await store_orders(app_services)
    gateway = app_services.gateway
    assert isinstance(gateway, SimulatedGateway)
    kept: Counter[str] = Counter()
    answers: list[httpx.Response] = []

    async def keep(order_id: str, user: str) -> None:
        """Paid twice by the shopper and notified by the gateway, all at once."""
        charge = await gateway.charge(order_id=order_id, amount=Decimal(PRICE), payment_token="t")
        answers.extend(
            await asyncio.gather(
                pay(client, auth.headers(user), order_id),
                pay(client, auth.headers(user), order_id),
                notify(client, app_services, notification(order_id, PRICE, charge.reference)),
            )
        )
        kept[user] += POINTS * (multiplier if user in members else 1)

    async def give_back(order_id: str, user: str) -> None:
        """Paid, then refunded twice at once (one refund wins)."""
        answers.append(await pay(client, auth.headers(user), order_id))
        refunds = await asyncio.gather(*(refund(client, auth.admin(), order_id) for _ in range(2)))
        assert sorted(r.status_code for r in refunds) == [200, 409], [r.text for r in refunds]

    await asyncio.gather(
        *(
            (keep if n % 2 else give_back)(order_id, user)
            for n, (order_id, user) in enumerate(owners.items())
        )
    )

    assert {r.status_code for r in answers} == {200}, {
        r.text for r in answers if r.status_code != 200
    }
    books = await point_books(app_services)
    assert books == {user: (kept[user], kept[user]) for user in users}
    for user in users:  # the API's statement adds up too
        body = await my_points(client, auth, user, limit=200)
        assert body["balance"] == sum(e["points"] for e in body["entries"]) == kept[user]
    async with app_services.sessionmaker() as session:
        per_order = await session.execute(
            text("SELECT reason, count(*), sum(shortfall) FROM point_entries GROUP BY reason")
        )
        counts = {reason: (int(n), int(short)) for reason, n, short in per_order}
    orders = len(owners)
    assert counts == {"order_paid": (orders, 0), "order_refunded": (orders // 2, 0)}
