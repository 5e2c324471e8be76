"""A flash crowd through real HTTP: thousands of simultaneous buyers, then the invariants."""

import asyncio
import os
import random
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select

from app.container import Container
from app.flows.writer import OrderWriter
from app.inventory.models import StockMovement
from app.orders.models import Order
from app.store.keys import ItemKeys
from tests.support.factories import Auth, create_live_item

BUYERS = int(os.environ.get("CROWD_BUYERS", "700"))
ATTEMPTS = int(os.environ.get("CROWD_ATTEMPTS", "2000"))
STOCK = 100
LIMIT = 2
CLIENTS = 20
CONNECTIONS_PER_CLIENT = 25
Result = tuple[str, int, httpx.Response]


@pytest.fixture
async def http_base_url(app: FastAPI) -> AsyncIterator[str]:
    """The app served by uvicorn on a real socket, in this event loop."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        timeout_keep_alive=120,
        backlog=4096,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.mark.slow
async def test_two_thousand_buyers_sell_exactly_the_stock(
    client: httpx.AsyncClient, auth: Auth, http_base_url: str, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=STOCK, per_user_limit=LIMIT)
    rng = random.Random(7)
    headers = {f"u{n}": auth.headers(f"u{n}") for n in range(BUYERS)}
    attempts: list[tuple[str, int, str]] = []
    for n in range(ATTEMPTS):
        if n % 5 == 4:
            # A client retry: the same request again, same Idempotency-Key.
            attempts.append(attempts[rng.randrange(len(attempts))])
        else:
            user = f"u{rng.randrange(BUYERS)}"
            attempts.append((user, rng.choice([1, 1, 2]), f"k{n}"))
    rng.shuffle(attempts)

    # httpcore's pool scans all its connections per request (quadratic in pool size), so
    # the crowd is spread over many small clients: 500 connections in all.
    limits = httpx.Limits(max_connections=CONNECTIONS_PER_CLIENT)
    crowd = [
        httpx.AsyncClient(base_url=http_base_url, limits=limits, timeout=120)
        for _ in range(CLIENTS)
    ]
    start = asyncio.Event()

    async def attempt(n: int, user: str, quantity: int, key: str) -> Result:
        await start.wait()
        response = await crowd[n % CLIENTS].post(
            f"/api/v1/items/{item.id}/purchase",
            json={"quantity": quantity},
            headers={**headers[user], "Idempotency-Key": key},
        )
        return user, quantity, response

    tasks = [asyncio.create_task(attempt(n, *a)) for n, a in enumerate(attempts)]
    await asyncio.sleep(0.1)
    start.set()
    try:
        results = await asyncio.gather(*tasks)
    finally:
        for c in crowd:
            await c.aclose()

    statuses = Counter(r.status_code for _, _, r in results)
    assert set(statuses) <= {202, 409}, statuses
    codes = Counter(r.json().get("code") for _, _, r in results if r.status_code == 409)
    assert set(codes) <= {"sold_out", "limit_exceeded"}, codes

    accepted: dict[str, tuple[str, int]] = {}
    for user, quantity, response in results:
        if response.status_code == 202:
            order_id = response.json()["order_id"]
            # A replay returns the first order, which bought the first quantity.
            accepted.setdefault(order_id, (user, quantity))
    sold = sum(q for _, q in accepted.values())
    per_user = Counter[str]()
    for user, quantity in accepted.values():
        per_user[user] += quantity

    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    remaining = int(await app_services.redis.hget(keys.sale, "stock") or -1)
    assert sold == STOCK - remaining
    assert remaining == 0, "demand far above stock must sell out"
    assert max(per_user.values()) <= LIMIT

    writer = OrderWriter(
        redis=app_services.redis,
        sessionmaker=app_services.sessionmaker,
        settings=app_services.settings,
    )
    assert await writer.drain() == len(accepted)
    async with app_services.sessionmaker() as session:
        rows = (await session.execute(select(Order.id, Order.user_id, Order.quantity))).all()
        sold_in_ledger = await session.scalar(
            select(func.sum(StockMovement.item_stock_delta)).where(
                StockMovement.item_id == item.id, StockMovement.reason == "sold"
            )
        )
    assert {r.id: (r.user_id, r.quantity) for r in rows} == accepted
    assert len(rows) == len(accepted), "every accepted order exactly once"
    assert sold_in_ledger == -STOCK
    assert await app_services.redis.xlen(keys.orders) == 0
    assert await app_services.redis.hlen(keys.queued) == 0
