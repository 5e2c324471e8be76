"""Operations endpoints, the OpenAPI document, and problem+json on every refusal."""

import json
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.exceptions import ConnectionError as RedisConnectionError

from app.config import Settings
from app.container import Container
from app.flows.freshness import check_once
from app.processes.api import create_app
from app.store.coupon_keys import CouponKeys
from app.store.keys import ItemKeys
from tests.support.coupons import create_coupon
from tests.support.factories import (
    Auth,
    assert_problem,
    buy,
    create_live_item,
    event_spec,
    item_spec,
)
from tests.support.lifecycle import stored_order
from tests.support.outages import closed_port, postgres_unreachable, redis_unreachable

# RFC 3339 date-time in UTC, as storefronts parse it.
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")

CONTRACT_PATHS = {
    "/api/v1/time": {"get"},
    "/api/v1/admin/events": {"post"},
    "/api/v1/events": {"get"},
    "/api/v1/events/{event_id}": {"get"},
    "/api/v1/items/{item_id}": {"get"},
    "/api/v1/items/{item_id}/purchase": {"post"},
    "/api/v1/orders": {"get"},
    "/api/v1/orders/{order_id}": {"get"},
    "/api/v1/orders/{order_id}/pay": {"post"},
    "/api/v1/orders/{order_id}/cancel": {"post"},
    "/healthz": {"get"},
    "/readyz": {"get"},
    "/metrics": {"get"},
}


async def test_server_time_is_rfc3339_utc(client: httpx.AsyncClient) -> None:
    before = datetime.now(UTC)
    response = await client.get("/api/v1/time")
    after = datetime.now(UTC)
    assert response.status_code == 200
    now = response.json()["now"]
    assert RFC3339_UTC.match(now), now
    assert before <= datetime.fromisoformat(now) <= after


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_both_servers_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "redis": "ok", "postgres": "ok", "sales": "ok"}


async def test_readyz_is_a_503_problem_when_redis_is_unreachable(
    client: httpx.AsyncClient, app_services: Container
) -> None:
    async with redis_unreachable(app_services):
        response = await client.get("/readyz")
    body = assert_problem(response, 503, "not_ready")
    assert body["checks"]["redis"].startswith("unreachable")
    assert body["checks"]["postgres"] == "ok"
    assert (await client.get("/readyz")).status_code == 200


async def test_readyz_is_a_503_problem_when_postgres_is_unreachable(
    client: httpx.AsyncClient, app_services: Container
) -> None:
    async with postgres_unreachable(app_services):
        response = await client.get("/readyz")
    body = assert_problem(response, 503, "not_ready")
    assert body["checks"]["postgres"].startswith("unreachable")
    assert body["checks"]["redis"] == "ok"
    assert (await client.get("/readyz")).status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"readiness_items_refresh_seconds": 0}])
async def test_readyz_is_a_503_problem_while_a_live_sale_is_not_in_redis(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    await app_services.redis.delete(keys.sale)  # Redis lost it

    body = assert_problem(await client.get("/readyz"), 503, "not_ready")
    assert body["checks"]["sales"] == f"not loaded in Redis: items [{item.id}]"
    assert (body["checks"]["redis"], body["checks"]["postgres"]) == ("ok", "ok")

    await check_once(app_services)  # the order writer's check rebuilds it
    # ... and keeps it frozen (the sale was open: a 202 may have been lost): ready, but
    # the answer says which sale is frozen and why, rather than "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["sales"].startswith("frozen after a hot-store fault")
    assert f"items {item.id} (unloaded:" in ready.json()["sales"]


@pytest.mark.parametrize("settings_overrides", [{"readiness_items_refresh_seconds": 0}])
async def test_readyz_names_frozen_items_and_coupons_and_why(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    coupon = await create_coupon(client, auth, total_quantity=5, per_user_limit=1)
    assert (await client.get("/readyz")).json() == {
        "status": "ok",
        "redis": "ok",
        "postgres": "ok",
        "sales": "ok",
    }
    prefix = app_services.settings.redis_key_prefix
    await app_services.redis.hset(ItemKeys(prefix, item.id).sale, "behind", 1)
    await app_services.redis.hset(CouponKeys(prefix, coupon.id).coupon, "behind", 1)
    assert len(await check_once(app_services)) == 2

    ready = await client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded"
    assert f"items {item.id} (rolled_back:" in body["sales"]
    assert f"coupons {coupon.id} (rolled_back:" in body["sales"]


def _sample(metrics: str, name: str, labels: str = "") -> float:
    pattern = re.escape(f"{name}{labels}") + r" (\S+)$"
    match = re.search(pattern, metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_metrics_count_purchases_in_prometheus_text(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    item = await create_live_item(client, auth, stock=5)
    before = (await client.get("/metrics")).text
    assert (await buy(client, auth, item.id)).status_code == 202
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert "# TYPE seckill_purchases_total counter" in text
    accepted = '{outcome="accepted"}'
    assert _sample(text, "seckill_purchases_total", accepted) == (
        _sample(before, "seckill_purchases_total", accepted) + 1
    )
    stock = f'{{item="{item.id}"}}'
    assert _sample(text, "seckill_item_stock_remaining", stock) == 4
    assert _sample(text, "seckill_orders_queued", stock) == 1


async def test_metrics_answer_when_redis_does_not(
    client: httpx.AsyncClient, app_services: Container
) -> None:
    async with redis_unreachable(app_services):
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert "seckill_purchases_total" in response.text


async def test_openapi_lists_the_contract_and_the_problem_schema(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    for path, methods in CONTRACT_PATHS.items():
        assert path in document["paths"], path
        assert methods <= document["paths"][path].keys(), path
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code"} <= set(problem["required"])
    for path, operations in document["paths"].items():
        if path.startswith("/api/v1/admin/"):
            for method, operation in operations.items():
                assert {"401", "403"} <= operation["responses"].keys(), (method, path)


async def test_openapi_documents_every_refusal_as_a_problem(client: httpx.AsyncClient) -> None:
    document: dict[str, Any] = (await client.get("/openapi.json")).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if not status.startswith(("4", "5")):
                    continue
                content = response["content"]
                assert list(content) == ["application/problem+json"], (method, path, status)
                schema = content["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path, status)
    schemas = document["components"]["schemas"]
    for ref in re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)):
        assert ref in schemas, ref


async def test_an_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/nowhere"), 404, "not_found")


async def test_a_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/time")
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"


@pytest.fixture
async def refusals(client: httpx.AsyncClient, auth: Auth) -> list[httpx.Response]:
    """One of every kind of 4xx the foundation answers with."""
    item = await create_live_item(client, auth, sku="ONE", stock=1, per_user_limit=1)
    assert (await buy(client, auth, item.id, user_id="first")).status_code == 202
    short = event_spec(items=[item_spec(sku="ONE", stock=5)])
    return [
        await client.get("/api/v1/orders"),
        await client.get("/api/v1/admin/skus", headers=auth.headers()),
        await client.get("/api/v1/events/999999"),
        await client.get("/api/v1/items/abc"),
        await client.get("/api/v1/events", params={"state": "soon"}),
        await client.get("/api/v1/nowhere"),
        await client.put("/api/v1/events"),
        await client.post("/api/v1/admin/events", content=b"{", headers=auth.admin()),
        await client.post("/api/v1/admin/events", json=short, headers=auth.admin()),
        await buy(client, auth, item.id, user_id="second"),
        await buy(client, auth, item.id, user_id="first", quantity=2),
    ]


async def test_every_4xx_is_problem_json(refusals: list[httpx.Response]) -> None:
    statuses = sorted({r.status_code for r in refusals})
    assert statuses == [401, 403, 404, 405, 409, 422]
    for response in refusals:
        assert response.headers["content-type"] == "application/problem+json", response.text
        body = response.json()
        assert {"type", "title", "status", "detail", "code"} <= body.keys()
        assert body["status"] == response.status_code


async def test_an_app_with_an_unreachable_redis_refuses_to_boot(settings: Settings) -> None:
    broken = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port()}/0"})
    application: FastAPI = create_app(broken)
    with pytest.raises(RedisConnectionError):
        async with application.router.lifespan_context(application):
            pass


async def test_metrics_count_lifecycle_changes_and_stock_returns(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await stored_order(client, auth, app_services, item.id)
    before = (await client.get("/metrics")).text

    cancelled = await client.post(f"/api/v1/orders/{order_id}/cancel", headers=auth.headers())
    assert cancelled.status_code == 200, cancelled.text

    text = (await client.get("/metrics")).text
    for name, labels in (
        ("seckill_order_transitions_total", '{cause="user_cancel",to_status="cancelled"}'),
        ("seckill_stock_returns_total", '{to="on_sale"}'),
    ):
        assert _sample(text, name, labels) == _sample(before, name, labels) + 1, name
