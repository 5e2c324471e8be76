"""What is refused before a route runs, and the answers' headers (README "Security")."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from app.config import Environment, Settings
from app.processes.api import create_app
from tests.conftest import TEST_JWT_SECRET
from tests.support.factories import Auth, assert_problem, create_live_item
from tests.support.serving import serving

MB = 1024 * 1024
ADMIN_SKUS = "/api/v1/admin/skus"


def limit(settings: Settings) -> int:
    return settings.max_body_bytes


# -- bodies ------------------------------------------------------------------------------


async def test_a_declared_oversized_body_is_refused_unread(
    app: FastAPI, auth: Auth, settings: Settings
) -> None:
    """Content-Length alone decides: not one byte of the body is asked for."""
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    token = auth.headers()["Authorization"].encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/items/1/purchase",
        "raw_path": b"/api/v1/items/1/purchase",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"seckill.test"),
            (b"authorization", token),
            (b"content-type", b"application/json"),
            (b"content-length", str(200 * MB).encode()),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("seckill.test", 80),
        "state": {},
        "app": app,
    }
    await app(scope, receive, send)

    assert sent[0]["status"] == 413
    assert reads == 0
    body = json.loads(sent[1]["body"])
    assert (body["code"], body["status"]) == ("payload_too_large", 413)
    assert (b"connection", b"close") in sent[0]["headers"]


async def test_a_streamed_100_mb_body_is_refused_after_at_most_the_limit(
    client: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    item = await create_live_item(client, auth)
    chunk = b" " * 8192
    produced = 0

    async def hundred_megabytes() -> AsyncIterator[bytes]:
        nonlocal produced
        for _ in range(100 * MB // len(chunk)):
            produced += len(chunk)
            yield chunk

    # No Content-Length: the body arrives chunked and is counted as it is read.
    response = await client.post(
        f"/api/v1/items/{item.id}/purchase",
        content=hundred_megabytes(),
        headers={**auth.headers(), "Content-Type": "application/json"},
    )

    assert_problem(response, 413, "payload_too_large")
    assert produced <= limit(settings) + len(chunk)


async def test_a_body_at_the_limit_is_read(
    client: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    item = await create_live_item(client, auth)
    body = b'{"quantity": 1}'.ljust(limit(settings))

    async def streamed() -> AsyncIterator[bytes]:
        yield body

    for content in (body, streamed()):
        response = await client.post(
            f"/api/v1/items/{item.id}/purchase",
            content=content,
            headers={**auth.headers(), "Content-Type": "application/json"},
        )
        assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b'{"quantity": "\xff\xfe"}', "UTF-8", id="invalid-utf8"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "nested", id="over-deep"),
        pytest.param(b'{"quantity": 1', "JSON", id="truncated"),
    ],
)
async def test_malformed_bodies_are_validation_errors(
    client: httpx.AsyncClient, auth: Auth, body: bytes, reason: str, settings: Settings
) -> None:
    item = await create_live_item(client, auth)
    if len(body) > limit(settings):
        body = b"[" * (limit(settings) // 2) + b"]" * (limit(settings) // 2)
    for path, headers in (
        (f"/api/v1/items/{item.id}/purchase", auth.headers()),
        (ADMIN_SKUS, auth.admin()),
    ):
        response = await client.post(
            path, content=body, headers={**headers, "Content-Type": "application/json"}
        )
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["field"] == "body"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/admin/orders?user_id=a%00b", "user_id"),
        ("/api/v1/admin/orders?limit=5&cursor=%C2%BB%28%00%2B", "cursor"),
        ("/api/v1/admin/audit-log?cursor=%00", "cursor"),
        ("/api/v1/events?x%00=1", "x"),
    ],
)
async def test_a_query_parameter_holding_nul_is_a_validation_error(
    client: httpx.AsyncClient, auth: Auth, path: str, field: str
) -> None:
    """Postgres text cannot hold NUL: refused before any route reads it."""
    problem = assert_problem(await client.get(path, headers=auth.admin()), 422, "validation_error")
    assert problem["errors"][0]["field"] == field


async def test_an_order_id_naming_no_item_is_not_found(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    for order_id in ("01JD0000000000000000000000-%C2%B2", "01JD0000000000000000000000-a%00"):
        response = await client.get(f"/api/v1/orders/{order_id}", headers=auth.headers())
        assert_problem(response, 404, "not_found")


# -- admin routes: the token before the body ----------------------------------------------


async def test_admin_routes_check_the_token_before_the_body(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    malformed = {"content": b"{not json", "headers": {"Content-Type": "application/json"}}
    assert_problem(await client.post(ADMIN_SKUS, **malformed), 401, "unauthorized")  # type: ignore[arg-type]
    shopper = {"Content-Type": "application/json", **auth.headers()}
    assert_problem(
        await client.post(ADMIN_SKUS, content=b"{not json", headers=shopper), 403, "forbidden"
    )
    # Even a body far over the limit: the token is what is refused.
    huge = {"Content-Type": "application/json", "Content-Length": str(200 * MB)}
    refused = await client.post(ADMIN_SKUS, content=b"", headers=huge)
    assert_problem(refused, 401, "unauthorized")
    assert refused.headers["www-authenticate"] == "Bearer"


# -- routing -----------------------------------------------------------------------------


async def test_no_redirect_is_built_from_the_host_header(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/events/", headers={"Host": "evil.example"})
    assert_problem(response, 404, "not_found")
    assert "location" not in response.headers


async def test_allow_names_every_method_of_the_path(client: httpx.AsyncClient, auth: Auth) -> None:
    response = await client.options(ADMIN_SKUS, headers=auth.admin())
    assert_problem(response, 405, "method_not_allowed")
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert {"GET", "POST"} <= allowed


# -- tokens whose user id cannot be stored ------------------------------------------------


async def test_a_user_id_no_store_can_encode_is_unauthorized(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    item = await create_live_item(client, auth)
    token = jwt.encode(
        {"sub": "u\ud800", "exp": int(time.time()) + 600}, TEST_JWT_SECRET, algorithm="HS256"
    )
    headers = {"Authorization": f"Bearer {token}"}
    for response in (
        await client.post(f"/api/v1/items/{item.id}/purchase", json={}, headers=headers),
        await client.get("/api/v1/orders/01JD0000000000000000000000-1", headers=headers),
    ):
        assert_problem(response, 401, "unauthorized")


# -- headers -----------------------------------------------------------------------------


async def test_security_headers(client: httpx.AsyncClient, auth: Auth) -> None:
    public = await client.get("/api/v1/time")
    personal = await client.get("/api/v1/orders", headers=auth.headers())
    refused = await client.get("/api/v1/orders")
    for response in (public, personal, refused):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    assert personal.headers["cache-control"] == "no-store"
    assert "cache-control" not in public.headers


# -- docs and metrics ---------------------------------------------------------------------


async def test_docs_are_served_without_a_cdn(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert "https://" not in page.text.replace("https://fastapi.tiangolo.com", "")
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs/assets/{asset}" in page.text
        response = await client.get(f"/docs/assets/{asset}")
        assert response.status_code == 200
        assert len(response.content) > 10_000


@pytest.fixture
async def production_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    strong = "p" * 48
    production = settings.model_copy(
        update={
            "env": Environment.PRODUCTION,
            "payment_webhook_secret": settings.payment_webhook_secret.__class__(strong),
            "metrics_token": settings.jwt_secret.__class__("m" * 40),
        }
    )
    application = create_app(production)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://seckill.test") as c:
            yield c


async def test_production_hides_the_docs_and_guards_the_metrics(
    production_client: httpx.AsyncClient,
) -> None:
    for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui.css"):
        assert (await production_client.get(path)).status_code == 404, path
    assert_problem(await production_client.get("/metrics"), 401, "unauthorized")
    wrong = {"Authorization": "Bearer " + "x" * 40}
    assert_problem(await production_client.get("/metrics", headers=wrong), 401, "unauthorized")
    right = {"Authorization": "Bearer " + "m" * 40}
    response = await production_client.get("/metrics", headers=right)
    assert response.status_code == 200
    assert "seckill_purchases_total" in response.text


# -- the real server: header limits, no banner ---------------------------------------------


@pytest.fixture
async def served(app: FastAPI, settings: Settings) -> AsyncIterator[tuple[str, int]]:
    """The app behind uvicorn with the options `seckill serve` uses."""
    async with serving(app, settings) as address:
        yield address


async def _exchange(address: tuple[str, int], request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request)
        await writer.drain()
    except ConnectionError:
        pass  # the server may close while we still send
    try:
        return await asyncio.wait_for(reader.read(65536), 30)
    finally:
        writer.close()


async def test_an_oversized_header_is_refused_before_it_ends(
    served: tuple[str, int], settings: Settings
) -> None:
    # A head four times the limit, never finished: the server answers without waiting for
    # the rest (an 8 MB header is refused the same way, after the same bytes). Sent in one
    # piece the server reads whole, so its close is clean and the answer arrives.
    start = b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: "
    answer = await _exchange(served, start + b"x" * (4 * settings.max_header_bytes))
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


async def test_a_head_under_the_limit_is_served(
    served: tuple[str, int], settings: Settings
) -> None:
    filler = b"x" * (settings.max_header_bytes - 200)
    answer = await _exchange(
        served,
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Fill: " + filler + b"\r\nConnection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


async def test_the_server_names_no_banner_and_takes_bodies_after_the_head(
    served: tuple[str, int], settings: Settings, auth: Auth
) -> None:
    # Head and a body far larger than the head limit in one write: the body is no head.
    body = b'{"sku": "S-1", "name": "Sku"}'.ljust(settings.max_body_bytes)
    token = auth.admin()["Authorization"].encode()
    request = (
        b"POST "
        + ADMIN_SKUS.encode()
        + b" HTTP/1.1\r\nHost: a\r\nAuthorization: "
        + token
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
    answer = await _exchange(served, request)
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 201 "), answer[:300]
    assert b"\r\nserver:" not in head


async def test_operators_may_send_larger_bodies_than_shoppers(
    client: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    padded = b'{"sku": "BIG-1", "name": "Big"}'.ljust(4 * limit(settings))
    headers = {**auth.admin(), "Content-Type": "application/json"}
    assert (await client.post(ADMIN_SKUS, content=padded, headers=headers)).status_code == 201
    over = {**headers, "Content-Length": str(settings.max_admin_body_bytes + 1)}
    assert_problem(
        await client.post(ADMIN_SKUS, content=b"", headers=over), 413, "payload_too_large"
    )
