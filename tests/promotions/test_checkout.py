"""Regular checkout takes a daily promotion by itself: the first N qualifying orders of a
day, at most per_user_daily_limit per user, never with a coupon, never while its campaign
is not approved; cancel and payment timeout give the place back."""

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import update

from app.auth import User
from app.campaigns.models import Campaign
from app.container import Container
from app.db import commit
from app.orders import checkout as checkout_service
from app.orders.schemas import CheckoutCreate, OrderRead
from app.promotions import service as promotions
from tests.support.campaigns import approve_campaign, create_campaign
from tests.support.coupons import claim, create_coupon, create_sku
from tests.support.factories import Auth, assert_problem
from tests.support.lifecycle import order_row, sweeper, wait_until_overdue
from tests.support.promotions import (
    basket,
    checkout,
    create_promotion,
    taken,
    utc_today,
)


async def test_the_first_n_orders_of_the_day_take_it(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="120.00", category="food")
    promotion = await create_promotion(client, auth, daily_limit=2)

    quoted = await client.post(
        "/api/v1/orders/quote", json=basket({"RICE": 2}), headers=auth.headers("u1")
    )
    assert quoted.status_code == 200, quoted.text
    assert quoted.json()["promotion"] == {
        "id": promotion.id, "name": promotion.name, "amount_off": "30.00"
    }  # fmt: skip
    assert (quoted.json()["discount"], quoted.json()["total"]) == ("30.00", "210.00")

    orders = [(await checkout(client, auth, {"RICE": 2}, user=f"u{n}")).json() for n in range(3)]

    assert [o["promotion"] for o in orders] == [
        {"id": promotion.id, "name": promotion.name, "amount_off": "30.00"}
    ] * 2 + [None]  # fmt: skip
    assert [(o["discount"], o["total"]) for o in orders] == [
        ("30.00", "210.00"), ("30.00", "210.00"), ("0.00", "240.00")
    ]  # fmt: skip
    row = await order_row(app_services, orders[0]["id"])
    assert (row.promotion_id, row.promotion_day) == (promotion.id, utc_today())
    assert await taken(app_services, promotion.id, utc_today()) == 2
    # The day's places are gone: the quote says so too.
    quoted = await client.post(
        "/api/v1/orders/quote", json=basket({"RICE": 2}), headers=auth.headers("u9")
    )
    assert quoted.json()["promotion"] is None


async def test_one_per_user_a_day_by_default(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="250.00")
    promotion = await create_promotion(client, auth, daily_limit=5)
    first = (await checkout(client, auth, {"RICE": 1})).json()
    second = (await checkout(client, auth, {"RICE": 1})).json()
    assert (first["promotion"]["id"], second["promotion"]) == (promotion.id, None)
    quoted = await client.post(
        "/api/v1/orders/quote", json=basket({"RICE": 1}), headers=auth.headers()
    )
    assert quoted.json()["promotion"] is None  # the quote knows the user has had theirs
    other = (await checkout(client, auth, {"RICE": 1}, user="shopper-2")).json()
    assert other["promotion"]["id"] == promotion.id


async def test_min_spend_counts_the_lines_in_scope_only(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await create_sku(client, auth, "RICE", price="150.00", category="food")
    await create_sku(client, auth, "TV", price="3000.00", category="tv")
    await create_promotion(client, auth, scope={"categories": ["food"]}, amount_off="500.00")

    out_of_scope = (await checkout(client, auth, {"TV": 1}, user="a")).json()
    below = (await checkout(client, auth, {"RICE": 1, "TV": 1}, user="b")).json()
    reached = (await checkout(client, auth, {"RICE": 2, "TV": 1}, user="c")).json()

    assert (out_of_scope["promotion"], below["promotion"]) == (None, None)
    # 500 off, never more than the eligible subtotal (300).
    assert (reached["discount"], reached["total"]) == ("300.00", "3000.00")
    assert {line["sku"]: line["eligible"] for line in reached["lines"]} == {
        "RICE": True, "TV": False
    }  # fmt: skip


async def test_the_larger_promotion_first_then_the_next_with_places(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await create_sku(client, auth, "RICE", price="250.00")
    big = await create_promotion(client, auth, name="big", amount_off="50.00", daily_limit=1)
    small = await create_promotion(client, auth, name="small", amount_off="20.00", daily_limit=1)
    got = [(await checkout(client, auth, {"RICE": 1}, user=f"u{n}")).json() for n in range(3)]
    assert [o["promotion"] and o["promotion"]["id"] for o in got] == [big.id, small.id, None]


async def test_a_coupon_wins_over_the_promotion(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="400.00")
    promotion = await create_promotion(client, auth, amount_off="80.00")
    coupon = await create_coupon(client, auth)  # 300 off 50
    claimed = await claim(client, auth, coupon.id, user_id="shopper-1")
    claim_id = claimed.json()["id"]

    quoted = await client.post(
        "/api/v1/orders/quote", json=basket({"RICE": 1}, claim_id), headers=auth.headers()
    )
    order = (await checkout(client, auth, {"RICE": 1}, coupon=claim_id)).json()

    assert (quoted.json()["promotion"], quoted.json()["discount"]) == (None, "50.00")
    assert (order["promotion"], order["coupon"], order["discount"]) == (None, claim_id, "50.00")
    assert await taken(app_services, promotion.id, utc_today()) == 0


async def test_a_promotion_of_a_draft_campaign_never_applies(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="250.00")
    campaign = await create_campaign(client, auth)
    promotion = await create_promotion(client, auth, campaign_id=campaign["id"])
    held = await app_services.redis.hget(
        f"{app_services.settings.redis_key_prefix}:{{promotion:{promotion.id}}}:promotion", "held"
    )
    assert held == "1"  # Redis has it, held

    quoted = await client.post(
        "/api/v1/orders/quote", json=basket({"RICE": 1}), headers=auth.headers()
    )
    order = (await checkout(client, auth, {"RICE": 1})).json()

    assert (quoted.json()["promotion"], order["promotion"]) == (None, None)
    assert await taken(app_services, promotion.id, utc_today()) == 0
    assert (await client.get("/api/v1/promotions")).json() == []


async def test_approved_in_postgres_but_not_put_in_force_in_redis_takes_nothing(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """Redis enforces the hold itself: a campaign whose approval has not reached Redis
    gives no place, until put_campaign_in_force re-applies its promotions' terms."""
    await create_sku(client, auth, "RICE", price="250.00")
    campaign = await create_campaign(client, auth)
    promotion = await create_promotion(client, auth, campaign_id=campaign["id"])
    async with app_services.sessionmaker() as session:
        await session.execute(
            update(Campaign).where(Campaign.id == campaign["id"]).values(status="approved")
        )
        await session.commit()

    held = (await checkout(client, auth, {"RICE": 1}, user="early")).json()
    async with app_services.sessionmaker() as session:
        row = await session.get(Campaign, campaign["id"])
        assert row is not None
        await promotions.put_campaign_in_force(session=session, services=app_services, campaign=row)
    released = (await checkout(client, auth, {"RICE": 1}, user="later")).json()

    assert held["promotion"] is None
    assert released["promotion"]["id"] == promotion.id


async def test_approval_through_the_campaign_api_releases_it_and_stamps_orders(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="250.00")
    campaign = await create_campaign(client, auth)
    promotion = await create_promotion(client, auth, campaign_id=campaign["id"])
    await approve_campaign(client, auth, campaign["id"])

    listed = (await client.get("/api/v1/promotions")).json()
    wechat = await checkout(client, auth, {"RICE": 1}, user="a", headers={"X-Channel": "wechat"})
    unknown = await checkout(client, auth, {"RICE": 1}, user="b", headers={"X-Channel": "tiktok"})

    assert [p["id"] for p in listed] == [promotion.id]
    by_wechat, by_unknown = wechat.json(), unknown.json()
    assert by_wechat["promotion"]["id"] == promotion.id
    stamped = (by_wechat["campaign_id"], by_wechat["rules_version"], by_wechat["channel"])
    assert stamped == (campaign["id"], 1, "wechat")
    assert (by_unknown["campaign_id"], by_unknown["channel"]) == (campaign["id"], "other")
    read = await client.get(f"/api/v1/orders/{by_wechat['id']}", headers=auth.headers("a"))
    assert read.json()["promotion"]["id"] == promotion.id
    assert read.json()["channel"] == "wechat"


async def test_an_order_without_campaign_keeps_its_channel_code(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await create_sku(client, auth, "RICE", price="10.00")
    order = (await checkout(client, auth, {"RICE": 1}, headers={"X-Channel": "app"})).json()
    assert (order["campaign_id"], order["rules_version"], order["channel"]) == (None, None, "app")


async def test_a_cancelled_order_gives_its_place_back_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="250.00")
    promotion = await create_promotion(client, auth, daily_limit=1)
    first = (await checkout(client, auth, {"RICE": 1}, user="u1")).json()
    assert (await checkout(client, auth, {"RICE": 1}, user="u2")).json()["promotion"] is None

    cancels = await asyncio.gather(
        *(client.post(f"/api/v1/orders/{first['id']}/cancel", headers=auth.headers("u1"))
          for _ in range(3))
    )  # fmt: skip

    assert sorted(r.status_code for r in cancels) == [200, 409, 409]
    assert await taken(app_services, promotion.id, utc_today()) == 0
    again = (await checkout(client, auth, {"RICE": 1}, user="u2")).json()
    assert again["promotion"]["id"] == promotion.id
    # The canceller's own place came back too.
    assert (await checkout(client, auth, {"RICE": 1}, user="u1")).json()["promotion"] is None
    assert await taken(app_services, promotion.id, utc_today()) == 1


@pytest.mark.parametrize("settings_overrides", [{"payment_timeout_seconds": 1}])
async def test_a_timed_out_order_gives_its_place_back(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="250.00")
    promotion = await create_promotion(client, auth, daily_limit=1)
    first = (await checkout(client, auth, {"RICE": 1}, user="u1")).json()
    assert first["promotion"]["id"] == promotion.id
    await wait_until_overdue(app_services)

    results = await asyncio.gather(*(sweeper(app_services).drain() for _ in range(2)))

    assert sum(r.cancelled for r in results) == 1
    assert (await order_row(app_services, first["id"])).status == "cancelled"
    assert await taken(app_services, promotion.id, utc_today()) == 0
    again = (await checkout(client, auth, {"RICE": 1}, user="u2")).json()
    assert again["promotion"]["id"] == promotion.id


async def test_a_refused_checkout_keeps_no_place(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="250.00", on_hand=1)
    promotion = await create_promotion(client, auth, daily_limit=1)
    refused = await checkout(client, auth, {"RICE": 2}, user="u1")
    assert_problem(refused, 409, "insufficient_stock")
    assert await taken(app_services, promotion.id, utc_today()) == 0
    assert (await checkout(client, auth, {"RICE": 1}, user="u1")).json()["promotion"] is not None


async def test_a_repeated_idempotency_key_takes_no_second_place(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="250.00")
    promotion = await create_promotion(client, auth, daily_limit=5, per_user_daily_limit=5)
    headers = {"Idempotency-Key": "k1"}
    answers = await asyncio.gather(
        *(checkout(client, auth, {"RICE": 1}, headers=headers) for _ in range(4))
    )
    assert {a.json()["id"] for a in answers} == {answers[0].json()["id"]}
    assert await taken(app_services, promotion.id, utc_today()) == 1


async def test_the_day_turns_at_midnight_in_the_campaigns_timezone(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """Asia/Shanghai is UTC+8: 15:59:59 UTC is 23:59:59 there, 16:00:00 is the next day.
    The checkout's clock is its `now` (the router passes utc_now()); Redis's own clock
    only checks the promotion's window, which spans both days."""
    await create_sku(client, auth, "RICE", price="250.00")
    campaign = await create_campaign(client, auth)
    await approve_campaign(client, auth, campaign["id"])
    today = utc_today()
    midnight = datetime(today.year, today.month, today.day, 16, tzinfo=UTC)
    promotion = await create_promotion(
        client,
        auth,
        campaign_id=campaign["id"],
        daily_limit=1,
        starts_at=(datetime.now(UTC) - timedelta(days=1)).isoformat(),
        ends_at=(midnight + timedelta(days=2)).isoformat(),
    )
    user = User(id="night-owl")

    async def order_at(now: datetime) -> OrderRead:
        async with app_services.sessionmaker() as session:
            order, _new = await checkout_service.place_order(
                session=session,
                services=app_services,
                user=user,
                data=CheckoutCreate.model_validate(basket({"RICE": 1})),
                idempotency_key=None,
                channel=None,
                now=now,
            )
            read = OrderRead.model_validate(order)
            await commit(session)
        return read

    late = await order_at(midnight - timedelta(seconds=1))
    after_midnight = await order_at(midnight)
    same_day = await order_at(midnight + timedelta(seconds=1))

    assert late.promotion is not None
    assert after_midnight.promotion is not None
    assert same_day.promotion is None
    assert (await order_row(app_services, late.id)).promotion_day == today
    next_day = today + timedelta(days=1)
    assert (await order_row(app_services, after_midnight.id)).promotion_day == next_day
    assert await taken(app_services, promotion.id, today) == 1
    assert await taken(app_services, promotion.id, today + timedelta(days=1)) == 1
    assert late.discount == Decimal("30.00")
