"""Retiring ended sales: settled ones lose their growing keys and leave the writer's
registry; unsettled ones (an unpaid order, a return owed, an order still in the stream)
keep everything; dead consumers leave the group, busy ones stay."""

import httpx
import pytest

from app.auth import User
from app.container import Container
from app.flows.audit import audit
from app.flows.retirement import remove_dead_consumers, retire_ended_sales
from app.flows.writer import OrderWriter
from app.orders import service as orders
from app.orders.models import TransitionCause
from app.store.keys import ItemKeys
from tests.support.factories import Auth, assert_problem, buy
from tests.support.lifecycle import closing_sale, store_orders, stored_order, wait_past
from tests.support.waiting import eventually

RETIRE_AT_ONCE = {"retire_after_seconds": 0.0, "worker_dead_consumer_seconds": 0.001}


async def pay(client: httpx.AsyncClient, auth: Auth, order_id: str, user: str) -> None:
    paid = await client.post(f"/api/v1/orders/{order_id}/pay", headers=auth.headers(user))
    assert paid.status_code == 200, paid.text


@pytest.mark.parametrize("settings_overrides", [RETIRE_AT_ONCE])
async def test_an_ended_settled_sale_is_retired_and_no_longer_polled(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item, ends_at = await closing_sale(client, auth, sku="RET-1", stock=5, per_user_limit=2)
    await pay(
        client, auth, await stored_order(client, auth, app_services, item, user_id="u1"), "u1"
    )
    keys = ItemKeys(app_services.settings.redis_key_prefix, item)
    assert await retire_ended_sales(app_services) == [], "not before the end"
    await wait_past(ends_at)

    assert await retire_ended_sales(app_services) == [item]

    assert not await app_services.redis.sismember(app_services.keys.items, str(item))
    assert await app_services.redis.exists(keys.buyers) == 0
    writer = OrderWriter(
        redis=app_services.redis,
        sessionmaker=app_services.sessionmaker,
        settings=app_services.settings,
    )
    await writer.refresh_streams(force=True)
    assert keys.orders not in writer.streams
    assert_problem(await buy(client, auth, item, user_id="u2"), 409, "ended")
    assert (await client.get(f"/api/v1/items/{item}")).json()["state"] == "ended"
    report = await audit(services=app_services)
    assert report.ok, report.problems
    assert await retire_ended_sales(app_services) == [], "once"


@pytest.mark.parametrize("settings_overrides", [RETIRE_AT_ONCE])
async def test_an_ended_sale_with_anything_unsettled_keeps_its_keys(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    unpaid, ends_at = await closing_sale(client, auth, sku="RET-2", stock=5, per_user_limit=2)
    await stored_order(client, auth, app_services, unpaid, user_id="u1")
    owed, _ = await closing_sale(client, auth, sku="RET-3", stock=5, per_user_limit=2)
    cancelled = await stored_order(client, auth, app_services, owed, user_id="u1")
    waiting, _ = await closing_sale(client, auth, sku="RET-4", stock=5, per_user_limit=2)
    assert (await buy(client, auth, waiting, user_id="u1")).status_code == 202  # not stored
    await wait_past(ends_at)
    async with app_services.sessionmaker() as session:  # cancelled, return not given yet
        await orders.cancel(
            session=session,
            services=app_services,
            user=User(id="u1"),
            order_id=cancelled,
            cause=TransitionCause.USER_CANCEL,
        )
        await session.commit()

    assert await retire_ended_sales(app_services) == []

    registry = await app_services.redis.smembers(app_services.keys.items)
    assert {str(unpaid), str(owed), str(waiting)} <= registry
    await store_orders(app_services)  # now the waiting one is stored: still unpaid
    assert await retire_ended_sales(app_services) == []


@pytest.mark.parametrize("settings_overrides", [RETIRE_AT_ONCE])
async def test_dead_consumers_leave_the_group_and_busy_ones_stay(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item, _ = await closing_sale(client, auth, sku="RET-5", stock=5, per_user_limit=2)
    stream = ItemKeys(app_services.settings.redis_key_prefix, item).orders
    group = app_services.settings.worker_group
    redis = app_services.redis
    await redis.execute_command("XGROUP", "CREATECONSUMER", stream, group, "dead-worker")
    assert (await buy(client, auth, item, user_id="u1")).status_code == 202
    await redis.xreadgroup(group, "busy-worker", {stream: ">"}, count=1)  # holds the entry

    async def idle_past_threshold() -> bool:
        consumers = await redis.xinfo_consumers(stream, group)
        return all(int(c["idle"]) > 1 for c in consumers)

    await eventually(idle_past_threshold)

    assert await remove_dead_consumers(app_services) == 1
    names = {c["name"] for c in await redis.xinfo_consumers(stream, group)}
    assert names == {"busy-worker"}
