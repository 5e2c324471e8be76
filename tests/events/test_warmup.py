"""Warm-up: loading sales from Postgres (the truth) into Redis, without undoing live sales."""

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import update

from app.auth import User
from app.config import Settings
from app.container import Container
from app.events import service as events
from app.flows.freshness import SALES, recover
from app.flows.writer import OrderWriter
from app.orders.models import Order, OrderStatus
from app.orders.release import return_stock
from app.processes.api import create_app
from app.store.keys import ItemKeys
from app.store.sale_state import stream_orders
from tests.support.factories import (
    Auth,
    assert_problem,
    buy,
    create_ended_event,
    create_event,
    create_live_item,
    item_spec,
)
from tests.support.lifecycle import rebuild_and_resume


async def _warm_up(services: Container) -> int:
    async with services.sessionmaker() as session:
        return await events.warm_up(session=session, services=services)


async def _store_queued_orders(services: Container) -> int:
    writer = OrderWriter(
        redis=services.redis, sessionmaker=services.sessionmaker, settings=services.settings
    )
    return await writer.drain()


async def _remaining(client: httpx.AsyncClient, item_id: int) -> int:
    remaining: int = (await client.get(f"/api/v1/items/{item_id}")).json()["remaining"]
    return remaining


def _keys(settings: Settings, item_id: int) -> ItemKeys:
    return ItemKeys(settings.redis_key_prefix, item_id)


async def test_warm_up_keeps_a_sale_in_progress(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, redis: Redis
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=3)
    assert (await buy(client, auth, item.id, user_id="a", quantity=3)).status_code == 202
    assert (await buy(client, auth, item.id, user_id="b", quantity=1)).status_code == 202
    keys = _keys(app_services.settings, item.id)
    buyers = await redis.hgetall(keys.buyers)

    assert await _warm_up(app_services) == 0
    assert await _warm_up(app_services) == 0

    assert await _remaining(client, item.id) == 6
    assert await redis.hgetall(keys.buyers) == buyers == {"a": "3", "b": "1"}
    assert_problem(await buy(client, auth, item.id, user_id="a"), 409, "limit_exceeded")


async def test_warm_up_after_orders_are_stored_keeps_the_live_counters(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=5)
    assert (await buy(client, auth, item.id, quantity=4)).status_code == 202
    assert await _store_queued_orders(app_services) == 1
    assert await _warm_up(app_services) == 0
    assert await _remaining(client, item.id) == 6


async def test_a_lost_sale_is_rebuilt_from_stored_orders(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, redis: Redis
) -> None:
    item = await create_live_item(client, auth, stock=20, per_user_limit=5)
    item_id = item.id
    for user_id, quantity in (("a", 2), ("b", 3), ("c", 1)):
        response = await buy(client, auth, item_id, user_id=user_id, quantity=quantity)
        assert response.status_code == 202, response.text
    assert await _store_queued_orders(app_services) == 3
    # c's order was cancelled, its return not booked yet (Redis went away, say).
    async with app_services.sessionmaker() as session, session.begin():
        await session.execute(
            update(Order)
            .where(Order.item_id == item_id, Order.user_id == "c")
            .values(status=OrderStatus.CANCELLED.value)
        )
    keys = _keys(app_services.settings, item_id)
    await redis.delete(keys.sale, keys.buyers)

    assert await _warm_up(app_services) == 0, "lost, not new: frozen, never rebuilt here"
    assert_problem(await buy(client, auth, item_id, user_id="d"), 503, "recovering")
    assert len(await rebuild_and_resume(app_services)) == 1

    # The owed return still counts as sold and held: only release.lua gives it back.
    assert await _remaining(client, item_id) == 20 - 2 - 3 - 1
    assert await redis.hgetall(keys.buyers) == {"a": "2", "b": "3", "c": "1"}
    assert (await return_stock(services=app_services)).on_sale == 1
    assert await _remaining(client, item_id) == 20 - 2 - 3
    assert await redis.hgetall(keys.buyers) == {"a": "2", "b": "3"}
    assert (await return_stock(services=app_services)).total == 0, "returned once"
    assert_problem(await buy(client, auth, item_id, user_id="b", quantity=3), 409, "limit_exceeded")
    assert (await buy(client, auth, item_id, user_id="b", quantity=2)).status_code == 202
    # With c's unit back, five more do not take c over the limit.
    assert (await buy(client, auth, item_id, user_id="c", quantity=5)).status_code == 202
    assert await _remaining(client, item_id) == 20 - 2 - 3 - 2 - 5


async def test_a_rebuild_counts_orders_still_waiting_in_the_stream(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, redis: Redis
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=5)
    item_id = item.id
    assert (await buy(client, auth, item_id, user_id="a", quantity=2)).status_code == 202
    assert await _store_queued_orders(app_services) == 1
    # Accepted but not written yet: only the stream knows these.
    assert (await buy(client, auth, item_id, user_id="b", quantity=3)).status_code == 202
    assert (await buy(client, auth, item_id, user_id="a", quantity=1)).status_code == 202
    keys = _keys(app_services.settings, item_id)
    await redis.delete(keys.sale, keys.buyers)  # say, evicted

    assert await _warm_up(app_services) == 0
    assert len(await rebuild_and_resume(app_services)) == 1

    assert await _remaining(client, item_id) == 10 - 2 - 3 - 1
    assert await redis.hgetall(keys.buyers) == {"a": "3", "b": "3"}
    assert await _store_queued_orders(app_services) == 2
    assert await _remaining(client, item_id) == 4


async def test_warm_up_of_a_live_sale_reads_neither_its_stream_nor_its_buyers(
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    redis: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every API process warms up at its start: after a big sale, reading a live sale's
    whole backlog and buyers each time timed out (a million entries in one XRANGE)."""
    item = await create_live_item(client, auth, stock=10, per_user_limit=5)
    assert (await buy(client, auth, item.id, user_id="a", quantity=2)).status_code == 202
    read: list[int] = []
    real_read = stream_orders

    async def counted(**kwargs: Any) -> Any:
        read.append(kwargs["item_id"])
        return await real_read(**kwargs)

    monkeypatch.setattr("app.events.service.stream_orders", counted)
    assert await _warm_up(app_services) == 0
    assert read == []
    assert await _remaining(client, item.id) == 8

    keys = _keys(app_services.settings, item.id)
    await redis.delete(keys.sale, keys.buyers)
    assert await _warm_up(app_services) == 0
    assert read == [], "a lost sale is frozen by the warm-up and rebuilt by the check"
    assert len(await rebuild_and_resume(app_services)) == 1
    assert read == [item.id]
    assert await _remaining(client, item.id) == 8


async def test_warm_up_refreshes_the_terms_of_a_live_sale(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, redis: Redis
) -> None:
    event = await create_event(client, auth, items=[item_spec(stock=5)])
    item_id = event.items[0].id
    assert (await buy(client, auth, item_id)).status_code == 202
    keys = _keys(app_services.settings, item_id)
    older = await redis.hget(keys.sale, "terms_version")
    async with app_services.sessionmaker() as session, session.begin():
        await events.set_paused(
            session=session,
            services=app_services,
            actor=User(id="operator"),
            event_id=event.id,
            paused=True,
        )
    # An operator's change that Redis lost (back from a snapshot taken before it).
    await redis.hset(keys.sale, mapping={"paused": "0", "terms_version": str(older)})

    assert await _warm_up(app_services) == 0

    assert await redis.hget(_keys(app_services.settings, item_id).sale, "paused") == "1"
    assert_problem(await buy(client, auth, item_id, user_id="late"), 409, "paused")
    assert await _remaining(client, item_id) == 4


async def test_start_up_reloads_live_and_upcoming_sales_but_not_ended_ones(
    client: httpx.AsyncClient,
    auth: Auth,
    settings: Settings,
    redis: Redis,
    app_services: Container,
) -> None:
    live = await create_event(client, auth, items=[item_spec(sku="L-1", stock=5)])
    upcoming = await create_event(
        client, auth, starts_in=timedelta(hours=1), items=[item_spec(sku="U-1", stock=6)]
    )
    ended = await create_ended_event(
        client, auth, app_services, items=[item_spec(sku="E-1", stock=7)]
    )
    item_ids = {
        name: event.items[0].id
        for name, event in (("live", live), ("upcoming", upcoming), ("ended", ended))
    }
    for item_id in item_ids.values():
        await redis.delete(*_keys(settings, item_id).all())

    restarted: FastAPI = create_app(settings)
    async with restarted.router.lifespan_context(restarted):
        pass

    def stock(name: str) -> str:
        return _keys(settings, item_ids[name]).sale

    # Rebuilt by the start-up check; the open sale stays frozen (a 202 may have been lost
    # with Redis's data), the upcoming one sells when it opens.
    assert await redis.hmget(stock("live"), ["stock", "frozen"]) == ["5", "1"]
    assert await redis.hmget(stock("upcoming"), ["stock", "frozen"]) == ["6", None]
    assert await redis.exists(stock("ended")) == 0
    # The ended sale still reads from Postgres.
    ended_item = (await client.get(f"/api/v1/items/{item_ids['ended']}")).json()
    assert (ended_item["remaining"], ended_item["state"]) == (7, "ended")
    assert_problem(await buy(client, auth, item_ids["live"]), 503, "recovering")
    assert await recover(redis, settings.redis_key_prefix, SALES, item_ids["live"])
    assert (await buy(client, auth, item_ids["live"])).status_code == 202


async def test_a_warm_up_that_read_before_a_pause_never_undoes_it(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=2)
    async with app_services.sessionmaker() as session:
        read_before = await events.get_event_row(session=session, event_id=item.event_id)
        paused = await client.post(
            f"/api/v1/admin/events/{item.event_id}/pause", headers=auth.admin()
        )
        assert paused.status_code == 200, paused.text

        # The warm-up writes what it read before the pause (say, an API process starting)
        await events.publish_sale(session=session, services=app_services, items=read_before.items)

    assert (await client.get(f"/api/v1/items/{item.id}")).json()["state"] == "paused"
    assert_problem(await buy(client, auth, item.id), 409, "paused")


async def test_pauses_and_resumes_racing_end_as_the_last_one_committed(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=2)
    keys = _keys(app_services.settings, item.id)
    for _ in range(5):
        await asyncio.gather(
            *(
                client.post(f"/api/v1/admin/events/{item.event_id}/{action}", headers=auth.admin())
                for action in ("pause", "resume", "pause", "resume")
            )
        )
        async with app_services.sessionmaker() as session:
            event = await events.get_event_row(session=session, event_id=item.event_id)
        assert await app_services.redis.hget(keys.sale, "paused") == ("1" if event.paused else "0")
