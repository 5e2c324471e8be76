"""Purchases are limited per user and per client address: 429 `rate_limited`, nothing taken."""

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Rate, Settings, parse_networks
from app.container import Container
from app.ratelimit.service import CheckingOutUser, ClaimingUser
from app.store.keys import ItemKeys
from tests.support.coupons import create_sku
from tests.support.factories import Auth, assert_problem, create_live_item

BURST = 1000
IN_FLIGHT = 200
# Refills come every 12 s at five a minute: a burst is over long before one would.
FIVE_PER_MINUTE = Rate(5, 60)


def limited(settings: Settings, **limits: Any) -> Settings:
    return settings.model_copy(update=limits)


async def burst(
    client: httpx.AsyncClient, path: str, headers: list[dict[str, str]]
) -> list[httpx.Response]:
    start = asyncio.Event()
    # All at once, up to what one process's Redis pool serves without queueing for a
    # new connection (on a busy machine a thousand fresh connections time out).
    in_flight = asyncio.Semaphore(IN_FLIGHT)

    async def one(h: dict[str, str]) -> httpx.Response:
        await start.wait()
        async with in_flight:
            return await client.post(path, json={"quantity": 1}, headers=h)

    tasks = [asyncio.create_task(one(h)) for h in headers]
    await asyncio.sleep(0)
    start.set()
    return await asyncio.gather(*tasks)


async def assert_taken(services: Container, item_id: int, *, stock: int, taken: int) -> None:
    keys = ItemKeys(services.settings.redis_key_prefix, item_id)
    assert int(await services.redis.hget(keys.sale, "stock") or -1) == stock - taken
    assert await services.redis.xlen(keys.orders) == taken
    bought = await services.redis.hgetall(keys.buyers)
    assert sum(int(v) for v in bought.values()) == taken


def assert_refusals(responses: list[httpx.Response], allowed: int) -> None:
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {202: allowed, 429: len(responses) - allowed}, statuses
    for response in responses:
        if response.status_code == 429:
            body = assert_problem(response, 429, "rate_limited")
            assert int(response.headers["retry-after"]) >= 1
            assert "retry after" in body["detail"]


class TestPerUser:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return limited(settings, rate_limit_per_user=FIVE_PER_MINUTE)

    async def test_a_burst_of_a_thousand_gets_exactly_the_limit(
        self, client: httpx.AsyncClient, auth: Auth, app_services: Container
    ) -> None:
        item = await create_live_item(client, auth, stock=100, per_user_limit=1000)
        headers = auth.headers("greedy")

        responses = await burst(client, f"/api/v1/items/{item.id}/purchase", [headers] * BURST)

        assert_refusals(responses, allowed=5)
        await assert_taken(app_services, item.id, stock=100, taken=5)

    async def test_other_users_keep_their_own_allowance(
        self, client: httpx.AsyncClient, auth: Auth
    ) -> None:
        item = await create_live_item(client, auth, stock=100, per_user_limit=1000)
        path = f"/api/v1/items/{item.id}/purchase"
        for _ in range(5):
            await client.post(path, json={"quantity": 1}, headers=auth.headers("a"))
        assert_problem(
            await client.post(path, json={"quantity": 1}, headers=auth.headers("a")),
            429,
            "rate_limited",
        )
        ok = await client.post(path, json={"quantity": 1}, headers=auth.headers("b"))
        assert ok.status_code == 202

    async def test_an_idempotent_retry_over_the_limit_is_refused_and_takes_nothing(
        self, client: httpx.AsyncClient, auth: Auth, app_services: Container
    ) -> None:
        item = await create_live_item(client, auth, stock=100, per_user_limit=1000)
        path = f"/api/v1/items/{item.id}/purchase"
        headers = {**auth.headers("a"), "Idempotency-Key": "k1"}
        first = await client.post(path, json={"quantity": 1}, headers=headers)
        for _ in range(4):
            assert (await client.post(path, json={"quantity": 1}, headers=headers)).json() == (
                first.json()
            )
        assert_problem(
            await client.post(path, json={"quantity": 1}, headers=headers), 429, "rate_limited"
        )
        await assert_taken(app_services, item.id, stock=100, taken=1)

    async def test_a_sold_out_item_answers_sold_out_without_counting(
        self, client: httpx.AsyncClient, auth: Auth
    ) -> None:
        item = await create_live_item(client, auth, stock=1, per_user_limit=1)
        path = f"/api/v1/items/{item.id}/purchase"
        assert (await client.post(path, json={"quantity": 1}, headers=auth.headers("a"))).is_success
        # The process knows it is sold out: that answer is cheaper than counting it.
        for _ in range(10):
            response = await client.post(path, json={"quantity": 1}, headers=auth.headers("b"))
            assert_problem(response, 409, "sold_out")


class TestPerAddress:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return limited(
            settings,
            rate_limit_per_user=None,
            rate_limit_per_address=FIVE_PER_MINUTE,
            trusted_proxies=parse_networks("127.0.0.1"),
        )

    async def test_many_users_from_one_address_share_its_limit(
        self, client: httpx.AsyncClient, auth: Auth, app_services: Container
    ) -> None:
        item = await create_live_item(client, auth, stock=100, per_user_limit=1000)
        headers = [auth.headers(f"u{n}") for n in range(BURST)]

        responses = await burst(client, f"/api/v1/items/{item.id}/purchase", headers)

        assert_refusals(responses, allowed=5)
        await assert_taken(app_services, item.id, stock=100, taken=5)

    async def test_a_trusted_proxy_names_the_client(
        self, client: httpx.AsyncClient, auth: Auth
    ) -> None:
        # The test client connects from 127.0.0.1, a trusted proxy here.
        item = await create_live_item(client, auth, stock=100, per_user_limit=1000)
        path = f"/api/v1/items/{item.id}/purchase"
        for n in range(5):
            headers = {**auth.headers(f"u{n}"), "X-Forwarded-For": "198.51.100.1"}
            assert (await client.post(path, json={"quantity": 1}, headers=headers)).is_success
        over = {**auth.headers("u9"), "X-Forwarded-For": "198.51.100.1"}
        assert_problem(
            await client.post(path, json={"quantity": 1}, headers=over), 429, "rate_limited"
        )
        other = {**auth.headers("u9"), "X-Forwarded-For": "198.51.100.2"}
        assert (await client.post(path, json={"quantity": 1}, headers=other)).is_success


class TestUntrustedForwardedFor:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return limited(settings, rate_limit_per_user=None, rate_limit_per_address=Rate(2, 60))

    async def test_a_client_cannot_dodge_by_naming_other_addresses(
        self, client: httpx.AsyncClient, auth: Auth
    ) -> None:
        item = await create_live_item(client, auth, stock=100, per_user_limit=1000)
        path = f"/api/v1/items/{item.id}/purchase"
        statuses = [
            (
                await client.post(
                    path,
                    json={"quantity": 1},
                    headers={**auth.headers(f"u{n}"), "X-Forwarded-For": f"198.51.100.{n}"},
                )
            ).status_code
            for n in range(4)
        ]
        assert statuses == [202, 202, 429, 429]


class TestOff:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return limited(settings, rate_limit_per_user=None, rate_limit_per_address=None)

    async def test_no_limit_no_bucket(
        self, client: httpx.AsyncClient, auth: Auth, app_services: Container
    ) -> None:
        item = await create_live_item(client, auth, stock=100, per_user_limit=1000)
        path = f"/api/v1/items/{item.id}/purchase"
        for _ in range(20):
            assert (
                await client.post(path, json={"quantity": 1}, headers=auth.headers("a"))
            ).is_success
        prefix = app_services.settings.redis_key_prefix
        assert [k async for k in app_services.redis.scan_iter(match=f"{prefix}:rl:*")] == []


async def test_the_429_is_in_the_openapi_document(app: FastAPI) -> None:
    operation = app.openapi()["paths"]["/api/v1/items/{item_id}/purchase"]["post"]
    assert "rate_limited" in operation["responses"]["429"]["description"]


class TestDependency:
    """`ClaimingUser` / `CheckingOutUser`: the same limits for routes outside the hot path
    (rate_limit.lua, per user and per address across all items)."""

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return limited(
            settings,
            rate_limit_per_user=Rate(3, 60),
            rate_limit_per_address=Rate(4, 60),
            trusted_proxies=parse_networks("127.0.0.1"),
        )

    @pytest.fixture
    def app(self, app: FastAPI) -> FastAPI:
        async def claim(user: ClaimingUser) -> dict[str, str]:
            return {"user": user.id}

        async def checkout(user: CheckingOutUser) -> dict[str, str]:
            return {"user": user.id}

        app.add_api_route("/test/claim", claim, methods=["POST"])
        app.add_api_route("/test/checkout", checkout, methods=["POST"])
        return app

    async def test_per_user_then_per_address(self, client: httpx.AsyncClient, auth: Auth) -> None:
        address = {"X-Forwarded-For": "198.51.100.7"}
        statuses = [
            (await client.post("/test/claim", headers={**auth.headers("a"), **address})).status_code
            for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        # The address has counted three so far (the refused request was not counted).
        assert (
            await client.post("/test/claim", headers={**auth.headers("b"), **address})
        ).is_success
        over = await client.post("/test/claim", headers={**auth.headers("c"), **address})
        assert_problem(over, 429, "rate_limited")
        assert int(over.headers["retry-after"]) >= 1
        # Checkout has buckets of its own.
        assert (
            await client.post("/test/checkout", headers={**auth.headers("a"), **address})
        ).is_success

    async def test_a_token_is_still_needed(self, client: httpx.AsyncClient) -> None:
        assert_problem(await client.post("/test/claim"), 401, "unauthorized")

    async def test_a_thousand_at_once_from_one_user(
        self, client: httpx.AsyncClient, auth: Auth
    ) -> None:
        headers = {**auth.headers("a"), "X-Forwarded-For": "198.51.100.8"}
        responses = await burst(client, "/test/checkout", [headers] * BURST)
        assert Counter(r.status_code for r in responses) == {200: 3, 429: BURST - 3}


class TestQuote:
    """`POST /orders/quote` is limited per user and per address like a checkout, on
    buckets of its own (re-quoting a cart leaves the checkout's allowance alone)."""

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return limited(
            settings,
            rate_limit_per_user=Rate(3, 60),
            rate_limit_per_address=Rate(4, 60),
            trusted_proxies=parse_networks("127.0.0.1"),
        )

    CART = {"items": [{"sku": "RICE", "quantity": 1}]}

    async def test_per_user_then_per_address(self, client: httpx.AsyncClient, auth: Auth) -> None:
        await create_sku(client, auth, "RICE", price="10.00")
        address = {"X-Forwarded-For": "198.51.100.9"}

        async def quote(user: str) -> httpx.Response:
            headers = {**auth.headers(user), **address}
            return await client.post("/api/v1/orders/quote", json=self.CART, headers=headers)

        assert [(await quote("a")).status_code for _ in range(4)] == [200, 200, 200, 429]
        # The address has counted three so far (the refused request was not counted).
        assert (await quote("b")).status_code == 200
        over = await quote("c")
        assert_problem(over, 429, "rate_limited")
        assert int(over.headers["retry-after"]) >= 1
        # Checkout has buckets of its own.
        placed = await client.post(
            "/api/v1/orders", json=self.CART, headers={**auth.headers("a"), **address}
        )
        assert placed.status_code == 201, placed.text

    async def test_a_burst_from_one_user_gets_exactly_the_limit(
        self, client: httpx.AsyncClient, auth: Auth
    ) -> None:
        await create_sku(client, auth, "RICE", price="10.00")
        headers = auth.headers("a")

        responses = await asyncio.gather(
            *(client.post("/api/v1/orders/quote", json=self.CART, headers=headers)
              for _ in range(100))
        )  # fmt: skip

        assert Counter(r.status_code for r in responses) == {200: 3, 429: 97}

    async def test_the_429_is_in_the_openapi_document(self, app: FastAPI) -> None:
        operation = app.openapi()["paths"]["/api/v1/orders/quote"]["post"]
        assert "rate_limited" in operation["responses"]["429"]["description"]
