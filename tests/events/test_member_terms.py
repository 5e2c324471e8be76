"""Member price and the members' reserve through the API, against real Redis and
Postgres: the terms are validated, a member's order keeps the member price and says it
was a member's, a crowd of members and shoppers splits the stock exactly, what members
left joins the general stock at the deadline exactly, a rebuild after Redis lost the sale
keeps the reserve, and stats and the report tell members' sales apart."""

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.container import Container
from app.events.models import EventItem
from app.orders.models import Order
from app.store.keys import ItemKeys
from tests.support.factories import (
    Auth,
    assert_problem,
    buy,
    create_event,
    event_spec,
    item_spec,
    problem_fields,
)
from tests.support.lifecycle import rebuild_and_resume, store_orders
from tests.support.payments import notification, notify


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def _live_item(client: httpx.AsyncClient, auth: Auth, **terms: Any) -> tuple[int, int]:
    """(event id, item id) of a live sale (open a minute, for an hour) with these terms."""
    event = await create_event(client, auth, items=[item_spec(**terms)])
    return event.id, event.items[0].id


async def _stored(services: Container, item_id: int) -> list[Order]:
    await store_orders(services)
    async with services.sessionmaker() as session:
        return list(await session.scalars(select(Order).where(Order.item_id == item_id)))


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"member_price": "2000.00"}, "items.0"),  # above the seckill price 1999.00
        ({"member_price": "0"}, "items.0.member_price"),
        ({"member_price": "-1.00"}, "items.0.member_price"),
        ({"member_reserved": 101}, "items.0"),  # above the stock, 100
        ({"member_reserved": -1}, "items.0.member_reserved"),
        ({"member_reserved": 10**12}, "items.0.member_reserved"),
        ({"member_reserved": "5"}, "items.0.member_reserved"),
        ({"member_reserved_until": _in(60)}, "items.0"),  # with no reserve
        ({"member_reserved": 5, "member_reserved_until": _in(7200)}, ""),  # after ends_at
        ({"member_reserved": 5, "member_reserved_until": _in(-120)}, ""),  # before starts_at
        ({"member_reserved": 5, "member_reserved_until": "soon"}, "items.0.member_reserved_until"),
    ],
)
async def test_bad_member_terms_are_refused_and_change_nothing(
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    terms: dict[str, Any],
    field: str,
) -> None:
    spec = event_spec(items=[item_spec(**terms)])

    response = await client.post("/api/v1/admin/events", json=spec, headers=auth.admin())

    body = assert_problem(response, 422, "validation_error")
    assert any(named.startswith(field) for named in problem_fields(body)), body
    async with app_services.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(EventItem)) == 0


async def test_the_item_shows_its_member_terms_and_a_reserve_lasts_the_sale_by_default(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    event = await create_event(
        client, auth, items=[item_spec(stock=10, member_price="1799.00", member_reserved=3)]
    )

    [item] = event.items
    assert (item.member_price, item.member_reserved) == (Decimal("1799.00"), 3)
    assert item.member_reserved_until == event.ends_at


async def test_a_member_pays_the_member_price_and_the_order_is_marked_a_members(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event_id, item_id = await _live_item(client, auth, member_price="1799.00")

    member = await buy(client, auth, item_id, user_id="m1", quantity=2, member=True)
    shopper = await buy(client, auth, item_id, user_id="s1")

    assert (member.status_code, shopper.status_code) == (202, 202), member.text
    orders = {o.user_id: o for o in await _stored(app_services, item_id)}
    assert (orders["m1"].unit_price, orders["m1"].amount, orders["m1"].member) == (
        Decimal("1799.00"),
        Decimal("3598.00"),
        True,
    )
    assert (orders["s1"].unit_price, orders["s1"].member) == (Decimal("1999.00"), False)
    read = await client.get(
        f"/api/v1/orders/{orders['m1'].id}", headers=auth.headers("m1", member=True)
    )
    assert read.json()["amount"] == "3598.00"

    stats = (
        await client.get(f"/api/v1/admin/events/{event_id}/stats", headers=auth.admin())
    ).json()
    assert (stats["member_units"], stats["items"][0]["member_units"]) == (2, 2)
    report = (
        await client.get(f"/api/v1/admin/events/{event_id}/report", headers=auth.admin())
    ).json()
    assert (report["totals"]["member_orders"], report["totals"]["member_units"]) == (1, 2)
    assert Decimal(report["totals"]["member_gmv"]) == 0  # nothing paid yet
    assert report["items"][0]["member_units"] == 2
    csv = await client.get(
        f"/api/v1/admin/events/{event_id}/report?format=csv", headers=auth.admin()
    )
    header, *_ = csv.text.splitlines()
    assert "member_units,member_paid_units,member_gmv" in header

    # Paid through the gateway's webhook (no shopper token): the order's snapshot says it
    # was a member's, so it earns the members' points.
    paid = await notify(client, app_services, notification(orders["m1"].id, "3598.00"))
    assert paid.status_code == 200, paid.text
    ledger = await client.get("/api/v1/me/points", headers=auth.headers("m1", member=True))
    assert ledger.json()["balance"] == 3598 * 2, ledger.text
    report = (
        await client.get(f"/api/v1/admin/events/{event_id}/report", headers=auth.admin())
    ).json()
    assert (report["totals"]["member_paid_units"], report["totals"]["member_gmv"]) == (
        2,
        "3598.00",
    )
    assert report["members"]["points"]["earned"] == 3598 * 2


async def _crowd(
    client: httpx.AsyncClient, auth: Auth, item_id: int, buyers: list[tuple[str, bool]]
) -> dict[str, int]:
    """Every buyer at once, one unit each; their status codes."""
    replies = await asyncio.gather(
        *(buy(client, auth, item_id, user_id=user, member=member) for user, member in buyers)
    )
    return {user: reply.status_code for (user, _), reply in zip(buyers, replies, strict=True)}


@pytest.mark.slow
async def test_a_crowd_splits_the_stock_exactly_and_the_reserve_is_released_at_its_end(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """300 buyers: 20 members and 180 shoppers while the reserve of 40 (of 100) holds,
    then 100 shoppers after it ends. Members get what they ask; shoppers exactly the 60
    general units, then exactly the 20 units members left."""
    reserve_seconds = 8.0
    ends = time.monotonic() + reserve_seconds
    event_id, item_id = await _live_item(
        client,
        auth,
        stock=100,
        per_user_limit=1,
        member_reserved=40,
        member_reserved_until=_in(reserve_seconds),
    )
    before = [(f"m{n}", True) for n in range(20)] + [(f"s{n}", False) for n in range(180)]

    first = await _crowd(client, auth, item_id, before)

    assert time.monotonic() < ends, "the crowd outlasted the reserve: the machine is too slow"
    assert sum(code == 202 for user, code in first.items() if user.startswith("m")) == 20
    assert sum(code == 202 for user, code in first.items() if user.startswith("s")) == 60
    assert set(first.values()) == {202, 409}
    stats = (
        await client.get(f"/api/v1/admin/events/{event_id}/stats", headers=auth.admin())
    ).json()
    assert stats["items"][0]["member_reserved_left"] == 20

    await asyncio.sleep(max(ends - time.monotonic(), 0) + 0.2)
    after = await _crowd(client, auth, item_id, [(f"t{n}", False) for n in range(100)])

    assert sum(code == 202 for code in after.values()) == 20
    orders = await _stored(app_services, item_id)
    assert len(orders) == len({o.id for o in orders}) == 100
    assert sum(o.member for o in orders) == 20
    assert sum(o.quantity for o in orders) == 100
    stock = await app_services.redis.hget(
        ItemKeys(app_services.settings.redis_key_prefix, item_id).sale, "stock"
    )
    assert stock == "0"


async def test_a_rebuilt_sale_keeps_what_members_left_of_the_reserve(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    _, item_id = await _live_item(client, auth, stock=10, per_user_limit=10, member_reserved=4)
    assert (
        await buy(client, auth, item_id, user_id="m1", quantity=3, member=True)
    ).status_code == 202
    await store_orders(app_services)
    # Redis loses the sale (restarted empty), then the operator's check rebuilds it.
    await app_services.redis.delete(
        *ItemKeys(app_services.settings.redis_key_prefix, item_id).all()
    )
    await client.get(f"/api/v1/items/{item_id}")
    await rebuild_and_resume(app_services)

    # One reserved unit is left: shoppers may take six of the seven.
    refused = await buy(client, auth, item_id, user_id="s1", quantity=7)
    assert_problem(refused, 409, "sold_out")
    assert (await buy(client, auth, item_id, user_id="s1", quantity=6)).status_code == 202
    assert (
        await buy(client, auth, item_id, user_id="m2", quantity=1, member=True)
    ).status_code == 202
