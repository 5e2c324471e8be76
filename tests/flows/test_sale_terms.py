"""The worker's sale terms check (app/flows/sale_terms.py): a live change that Redis took
but Postgres never committed is undone, one Redis lost is re-applied, stock whose
application after the commit failed is added, and none of it ever undoes a newer change,
even while operators keep changing the item."""

import asyncio
import contextlib
from decimal import Decimal

import httpx
from sqlalchemy import select

from app.auth import User
from app.container import Container
from app.events import controls
from app.events import service as events
from app.events.models import EventItem
from app.events.schemas import ItemUpdate
from app.flows.sale_terms import check_once
from app.moments import utc_now
from app.redis import as_text
from app.store.keys import ItemKeys
from tests.support.factories import (
    Auth,
    assert_problem,
    buy,
    create_event,
    create_live_item,
    item_spec,
)

OPERATOR = User(id="operator", is_admin=True)


async def in_postgres(services: Container, item_id: int) -> EventItem:
    async with services.sessionmaker() as session:
        item = await session.scalar(select(EventItem).where(EventItem.id == item_id))
        assert item is not None
        return item


async def in_redis(services: Container, item_id: int, *fields: str) -> list[str | None]:
    keys = ItemKeys(services.settings.redis_key_prefix, item_id)
    return [as_text(v) for v in await services.redis.hmget(keys.sale, list(fields))]


async def sku_with(client: httpx.AsyncClient, auth: Auth, on_hand: int) -> None:
    """The item's SKU (create_live_item's), with units beyond the sale's to add later."""
    response = await client.post(
        "/api/v1/admin/skus",
        json={"sku": "PHONE-1", "name": "Phone", "on_hand": on_hand},
        headers=auth.admin(),
    )
    assert response.status_code == 201, response.text


async def change_then_roll_back(services: Container, item_id: int, price: str) -> None:
    """A live change applied to Redis (before the commit, as always) whose commit then
    fails: Postgres never has it."""
    async with services.sessionmaker() as session:
        await controls.update_item(
            session=session,
            services=services,
            actor=OPERATOR,
            item_id=item_id,
            data=ItemUpdate(seckill_price=Decimal(price)),
            now=utc_now(),
        )
        await session.rollback()


async def test_a_change_whose_commit_failed_is_undone(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, seckill_price="1999.00")
    await change_then_roll_back(app_services, item.id, "999.00")
    assert await in_redis(app_services, item.id, "price") == ["999.00"]

    assert await check_once(app_services) == [item.id]

    stored = await in_postgres(app_services, item.id)
    assert stored.seckill_price == Decimal("1999.00")
    assert await in_redis(app_services, item.id, "price", "terms_version") == [
        "1999.00",
        str(stored.terms_version),
    ]
    assert await check_once(app_services) == [], "in step now: nothing more to do"
    assert (await buy(client, auth, item.id)).status_code == 202
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    entries = await app_services.redis.xrange(keys.orders) or []
    assert [as_text((fields or {})["unit_price"]) for _, fields in entries] == ["1999.00"]


async def test_a_change_redis_lost_is_re_applied(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await sku_with(client, auth, on_hand=15)
    item = await create_live_item(client, auth, stock=10, per_user_limit=3)
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    version_before = (await in_postgres(app_services, item.id)).terms_version
    response = await client.patch(
        f"/api/v1/admin/items/{item.id}",
        json={"per_user_limit": 1, "add_stock": 5},
        headers=auth.admin(),
    )
    assert response.status_code == 200, response.text
    # Redis back from a snapshot taken before the change (the older terms and
    # allocation): the limit of 3 and 10 units.
    await app_services.redis.hset(
        keys.sale,
        mapping={"limit": 3, "terms_version": version_before, "allocated": 10, "stock": 10},
    )

    assert await check_once(app_services) == [item.id]

    stored = await in_postgres(app_services, item.id)
    assert await in_redis(app_services, item.id, "limit", "allocated", "stock") == [
        "1",
        "15",
        "15",
    ]
    assert await in_redis(app_services, item.id, "terms_version") == [str(stored.terms_version)]
    assert (await buy(client, auth, item.id)).status_code == 202
    assert_problem(await buy(client, auth, item.id), 409, "limit_exceeded")


async def test_an_item_not_in_redis_is_left_to_the_hot_store_check(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth)
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    await app_services.redis.delete(keys.sale)

    assert await check_once(app_services) == []
    assert await app_services.redis.exists(keys.sale) == 0


async def test_changes_and_the_check_racing_leave_redis_as_postgres_says(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """Operators change the item (each 200 in force at once), changes are applied and
    rolled back, and the check runs all the while: a stale check never undoes a newer
    change, and once things settle Redis holds exactly Postgres's terms and stock."""
    await sku_with(client, auth, on_hand=10 + 45)
    item = await create_live_item(client, auth, stock=10, seckill_price="1999.00")
    done = asyncio.Event()

    async def checks() -> None:
        while not done.is_set():
            await check_once(app_services)
            await asyncio.sleep(0)

    async def operator(name: int) -> None:
        for step in range(15):
            price = f"{100 + 10 * name + step}.00"
            response = await client.patch(
                f"/api/v1/admin/items/{item.id}",
                json={"seckill_price": price, "add_stock": 1},
                headers=auth.admin(),
            )
            assert response.status_code == 200, response.text

    async def failing_commits() -> None:
        for step in range(15):
            await change_then_roll_back(app_services, item.id, f"{50 + step}.00")

    checking = asyncio.create_task(checks())
    try:
        await asyncio.gather(operator(1), operator(2), operator(3), failing_commits())
    finally:
        done.set()
        with contextlib.suppress(Exception):
            await checking
    await check_once(app_services)

    stored = await in_postgres(app_services, item.id)
    assert stored.stock == 10 + 45
    assert await in_redis(app_services, item.id, "price", "terms_version", "allocated") == [
        str(stored.seckill_price),
        str(stored.terms_version),
        str(stored.stock),
    ]
    assert await in_redis(app_services, item.id, "stock") == [str(stored.stock)]


async def test_each_change_is_in_force_when_answered_while_the_check_runs(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, seckill_price="1999.00")
    done = asyncio.Event()

    async def checks() -> None:
        while not done.is_set():
            await check_once(app_services)
            await asyncio.sleep(0)

    checking = asyncio.create_task(checks())
    try:
        for step in range(20):
            await change_then_roll_back(app_services, item.id, "1.00")
            price = f"{200 + step}.00"
            response = await client.patch(
                f"/api/v1/admin/items/{item.id}",
                json={"seckill_price": price},
                headers=auth.admin(),
            )
            assert response.status_code == 200, response.text
            assert await in_redis(app_services, item.id, "price") == [price]
    finally:
        done.set()
        await checking


async def test_a_pause_whose_commit_failed_is_undone_on_every_item(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_event(client, auth, items=[item_spec(sku="A-1"), item_spec(sku="B-1")])
    async with app_services.sessionmaker() as session:
        await events.set_paused(
            session=session,
            services=app_services,
            actor=OPERATOR,
            event_id=event.id,
            paused=True,
        )
        await session.rollback()
    for item in event.items:
        assert await in_redis(app_services, item.id, "paused") == ["1"]

    assert sorted(await check_once(app_services)) == [i.id for i in event.items]

    for item in event.items:
        assert await in_redis(app_services, item.id, "paused") == ["0"]
        assert (await buy(client, auth, item.id)).status_code == 202
