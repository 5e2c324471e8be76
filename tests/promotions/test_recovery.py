"""A Redis that lost or rolled back a promotion's places: checkouts that would take it
answer 503 recovering (nothing taken) while it is frozen; the hot-store check rebuilds it
from the orders in Postgres and it resumes. A rebuild waits for every checkout between its
Redis place and its commit (the promotion's advisory lock), so it never misses one."""

import asyncio

import httpx
import pytest
from sqlalchemy import func, select

from app.auth import User
from app.container import Container
from app.db import commit
from app.flows import freshness
from app.flows.freshness import Verdict
from app.moments import utc_now
from app.orders import checkout as checkout_service
from app.orders.models import Order
from app.orders.schemas import CheckoutCreate
from app.promotions import repository as promotions_repository
from app.store.freezes import freeze
from app.store.promotion_keys import PromotionKeys
from tests.support.coupons import create_sku
from tests.support.factories import Auth, assert_problem
from tests.support.lifecycle import on_hand
from tests.support.promotions import (
    basket,
    checkout,
    create_promotion,
    promoted_orders,
    taken,
    utc_today,
)


def keys_of(services: Container, promotion_id: int) -> PromotionKeys:
    return PromotionKeys(services.settings.redis_key_prefix, promotion_id)


async def lose(services: Container, promotion_id: int) -> None:
    """Redis loses every key of the promotion (a restart from nothing)."""
    pattern = f"{keys_of(services, promotion_id).tag}:*"
    found = [k async for k in services.redis.scan_iter(match=pattern)]
    assert found
    await services.redis.delete(*found)


async def orders_count(services: Container) -> int:
    async with services.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Order)) or 0)


async def test_lost_places_are_frozen_then_rebuilt_from_postgres(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="250.00", on_hand=50)
    promotion = await create_promotion(client, auth, daily_limit=4)
    placed = [(await checkout(client, auth, {"RICE": 1}, user=f"u{n}")).json() for n in range(3)]
    cancel = f"/api/v1/orders/{placed[1]['id']}/cancel"
    cancelled = await client.post(cancel, headers=auth.headers("u1"))
    assert cancelled.status_code == 200
    assert await taken(app_services, promotion.id, utc_today()) == 2
    await lose(app_services, promotion.id)

    # Lost, and this process saw it in force: nothing is taken until it is rebuilt.
    before = await orders_count(app_services)
    refused = await checkout(client, auth, {"RICE": 1}, user="u9")
    assert_problem(refused, 503, "recovering")
    assert refused.headers["Retry-After"]
    assert await orders_count(app_services) == before
    assert await on_hand(app_services, "RICE") == 50 - 2  # one of three cancelled

    found = await freshness.check_once(app_services)

    assert [(f.family, f.entity_id, f.verdict) for f in found] == [
        ("promotions", promotion.id, Verdict.UNLOADED)
    ]
    assert await taken(app_services, promotion.id, utc_today()) == 2
    day = keys_of(app_services, promotion.id).day(utc_today())
    holders = await app_services.redis.hgetall(day.holders)
    assert holders == {placed[0]["id"]: "u0", placed[2]["id"]: "u2"}
    # Resumed: the per-user counts came back too (u0 has had its one), and two places
    # are left of four.
    users = ("u0", "u1", "u9", "u8")
    again = [(await checkout(client, auth, {"RICE": 1}, user=u)).json() for u in users]
    assert [o["promotion"] is not None for o in again] == [False, True, True, False]
    assert len(await promoted_orders(app_services, promotion.id)) == 4


async def test_frozen_refuses_only_orders_the_promotion_would_apply_to(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="250.00", on_hand=10)
    await create_sku(client, auth, "SALT", price="2.00", on_hand=10)
    promotion = await create_promotion(client, auth)
    await freeze(app_services.redis, [keys_of(app_services, promotion.id).promotion])

    quoted = await client.post(
        "/api/v1/orders/quote", json=basket({"RICE": 1}), headers=auth.headers()
    )
    assert_problem(quoted, 503, "recovering")
    assert_problem(await checkout(client, auth, {"RICE": 1}), 503, "recovering")
    below_min_spend = await checkout(client, auth, {"SALT": 1})

    assert below_min_spend.status_code == 201
    assert await on_hand(app_services, "RICE") == 10
    assert await taken(app_services, promotion.id, utc_today()) == 0


async def test_a_rolled_back_redis_is_found_behind_and_rebuilt(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="250.00")
    promotion = await create_promotion(client, auth, daily_limit=2)
    first = (await checkout(client, auth, {"RICE": 1}, user="u1")).json()
    assert first["promotion"] is not None
    # An older snapshot: the place taken is not there, and the counters' seq is older
    # than what this process saw taken.
    keys = keys_of(app_services, promotion.id)
    day = keys.day(utc_today())
    await app_services.redis.delete(*day.all())
    await app_services.redis.hset(keys.promotion, "seq", 0)

    refused = await checkout(client, auth, {"RICE": 1}, user="u2")
    assert_problem(refused, 503, "recovering")
    assert await app_services.redis.hget(keys.promotion, "behind") == "1"
    found = await freshness.check_once(app_services)

    assert [(f.entity_id, f.verdict) for f in found] == [(promotion.id, Verdict.ROLLED_BACK)]
    assert await taken(app_services, promotion.id, utc_today()) == 1
    got = [(await checkout(client, auth, {"RICE": 1}, user=u)).json() for u in ("u2", "u3")]
    assert [o["promotion"] is not None for o in got] == [True, False]


async def test_healthy_places_are_no_fault(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="250.00")
    await create_promotion(client, auth, daily_limit=3)
    placed = [(await checkout(client, auth, {"RICE": 1}, user=f"u{n}")).json() for n in range(2)]
    await client.post(f"/api/v1/orders/{placed[0]['id']}/cancel", headers=auth.headers("u0"))

    assert await freshness.check_once(app_services) == []


async def test_an_older_snapshot_missing_a_stored_place_is_found_without_any_generation_seen(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """Redis comes back from a snapshot taken just before an order's place (same epoch and
    seq: no process is ahead of it). Today's holders lack an order Postgres has holding a
    place, not cancelled: rolled back, rebuilt."""
    await create_sku(client, auth, "RICE", price="250.00")
    promotion = await create_promotion(client, auth, daily_limit=2)
    first = (await checkout(client, auth, {"RICE": 1}, user="u1")).json()
    day = keys_of(app_services, promotion.id).day(utc_today())
    await app_services.redis.hdel(day.holders, first["id"])
    await app_services.redis.hdel(day.users, "u1")
    await app_services.redis.decr(day.taken)

    found = await freshness.check_once(app_services)

    assert [(f.entity_id, f.verdict) for f in found] == [(promotion.id, Verdict.ROLLED_BACK)]
    assert await app_services.redis.hgetall(day.holders) == {first["id"]: "u1"}
    got = [(await checkout(client, auth, {"RICE": 1}, user=u)).json() for u in ("u1", "u2", "u3")]
    assert [o["promotion"] is not None for o in got] == [False, True, False]


@pytest.mark.parametrize("locked", [True, False], ids=["with-the-lock", "without-the-lock"])
async def test_a_rebuild_waits_for_a_checkout_between_its_place_and_its_commit(
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    monkeypatch: pytest.MonkeyPatch,
    locked: bool,
) -> None:
    """Checkout A takes the day's only place in Redis; before A commits, Redis loses the
    promotion and the hot-store check rebuilds it. With the advisory lock the rebuild
    waits for A's commit and counts it: B gets no place. Without it (the race this lock
    closes), the rebuild reads Postgres without A and gives B a second place."""
    if not locked:

        async def no_lock(*_args: object) -> None:
            return None

        monkeypatch.setattr(promotions_repository, "lock_places", no_lock)
    await create_sku(client, auth, "RICE", price="250.00")
    promotion = await create_promotion(client, auth, daily_limit=1)

    async with app_services.sessionmaker() as session_a:
        order_a, _new = await checkout_service.place_order(
            session=session_a,
            services=app_services,
            user=User(id="a"),
            data=CheckoutCreate.model_validate(basket({"RICE": 1})),
            idempotency_key=None,
            channel=None,
            now=utc_now(),
        )
        assert order_a.promotion_id == promotion.id
        await lose(app_services, promotion.id)
        rebuild = asyncio.create_task(freshness.check_once(app_services))
        await asyncio.wait({rebuild}, timeout=1.0)
        assert rebuild.done() is not locked  # with the lock: waiting for A's commit
        await commit(session_a)
    await asyncio.wait_for(rebuild, timeout=30)

    b = (await checkout(client, auth, {"RICE": 1}, user="b")).json()
    promoted = await promoted_orders(app_services, promotion.id)
    if locked:
        assert b["promotion"] is None
        assert [o for o, _u, _d in promoted] == [order_a.id]
        assert await taken(app_services, promotion.id, utc_today()) == 1
    else:
        assert len(promoted) == 2  # daily_limit + 1: what the lock prevents
