"""The OpenAPI document says what the layers around the routes answer, where they answer
it: 413 `payload_too_large` on every operation that takes a body, 503 `recovering` /
`unavailable` with Retry-After on every operation a Redis or Postgres outage reaches;
and each operation is listed once."""

import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from app.container import Container
from tests.support.factories import Auth, assert_problem, create_live_item
from tests.support.outages import postgres_unreachable, redis_unreachable

BODY_LIMIT, ADMIN_BODY_LIMIT = 1024, 4096
# Neither Redis nor Postgres behind them, or an outage answered their own way.
NO_OUTAGE_503 = {"/api/v1/time", "/healthz", "/readyz", "/metrics", "/dashboard"}
Operations = list[tuple[str, str, dict[str, Any]]]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"max_body_bytes": BODY_LIMIT, "max_admin_body_bytes": ADMIN_BODY_LIMIT}


@pytest.fixture
async def operations(client: httpx.AsyncClient) -> Operations:
    """(method, path, operation) of every documented operation."""
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    paths: dict[str, dict[str, Any]] = response.json()["paths"]
    return [(m, p, op) for p, methods in paths.items() for m, op in methods.items()]


def codes(response: dict[str, Any]) -> set[str]:
    return set(re.findall(r"`([a-z_]+)`", response["description"]))


def is_problem(response: dict[str, Any]) -> bool:
    content = response["content"]["application/problem+json"]
    return bool(content["schema"] == {"$ref": "#/components/schemas/Problem"})


def concrete(path: str, values: dict[str, int] | None = None) -> str:
    """The path with every parameter filled: from `values`, else 1 (a 404 may answer)."""
    return re.sub(r"\{([a-z_]+)\}", lambda m: str((values or {}).get(m[1], 1)), path)


async def test_every_operation_that_takes_a_body_documents_413(operations: Operations) -> None:
    with_body = [(m, p, op) for m, p, op in operations if "requestBody" in op]
    assert len(with_body) >= 10
    for method, path, operation in with_body:
        documented = operation["responses"].get("413")
        assert documented is not None, (method, path)
        assert codes(documented) == {"payload_too_large"}, (method, path)
        assert is_problem(documented)
        limit = ADMIN_BODY_LIMIT if path.startswith("/api/v1/admin/") else BODY_LIMIT
        assert f"over {limit} bytes" in documented["description"], (method, path)
    for method, path, operation in operations:
        if "requestBody" not in operation:
            assert "413" not in operation["responses"], (method, path)


async def test_every_operation_that_takes_a_body_answers_413_as_documented(
    client: httpx.AsyncClient, auth: Auth, operations: Operations
) -> None:
    for method, path, operation in operations:
        if "requestBody" not in operation:
            continue
        limit = ADMIN_BODY_LIMIT if path.startswith("/api/v1/admin/") else BODY_LIMIT
        answer = await client.request(
            method,
            concrete(path),
            content=b"x" * (limit + 1),
            headers={**auth.admin(), "Content-Type": "application/json"},
        )
        assert_problem(answer, 413, "payload_too_large")


async def test_every_operation_that_reaches_a_backend_documents_503(
    operations: Operations,
) -> None:
    for method, path, operation in operations:
        documented = operation["responses"].get("503")
        if path in NO_OUTAGE_503:
            assert documented is None or not {"recovering", "unavailable"} & codes(documented)
            continue
        assert documented is not None, (method, path)
        assert {"recovering", "unavailable"} <= codes(documented), (method, path)
        assert is_problem(documented)
        assert documented["headers"]["Retry-After"]["schema"]["type"] == "integer"
    # A route's own 503 keeps its code beside the outages'.
    [stream] = [op for _, p, op in operations if p.endswith("/stats/stream")]
    assert {"too_many_streams", "recovering", "unavailable"} <= codes(stream["responses"]["503"])


Outage = Callable[[Container], AbstractAsyncContextManager[None]]


@pytest.mark.slow  # every GET of the API, against an unreachable backend
@pytest.mark.parametrize(
    ("outage", "code"),
    [(redis_unreachable, "recovering"), (postgres_unreachable, "unavailable")],
    ids=["redis", "postgres"],
)
async def test_every_503_a_read_answers_in_an_outage_is_documented(
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    operations: Operations,
    outage: Outage,
    code: str,
) -> None:
    item = await create_live_item(client, auth)
    answered: set[str] = set()
    async with outage(app_services):
        for method, path, operation in operations:
            if method != "get" or path.endswith("/stream"):  # a stream never ends
                continue
            url = concrete(path, {"item_id": item.id, "event_id": item.event_id})
            answer = await client.get(url, headers=auth.admin())
            if answer.status_code != 503:
                continue
            documented = operation["responses"].get("503")
            assert documented is not None, (path, answer.text)
            assert answer.json()["code"] in codes(documented), (path, answer.text)
            if answer.json()["code"] == code:
                assert int(answer.headers["Retry-After"]) >= 1
                answered.add(path)
    # The outage did reach the reads (the test is not vacuous).
    assert answered, f"no read answered 503 `{code}`"


async def test_every_operation_is_listed_once(
    client: httpx.AsyncClient, operations: Operations
) -> None:
    """Swagger UI lists an operation under each of its tags: /api/v1/time had two."""
    for method, path, operation in operations:
        assert len(operation.get("tags", [])) == 1, (method, path, operation.get("tags"))
    ids = [operation["operationId"] for _, _, operation in operations]
    assert len(ids) == len(set(ids))
    [time] = [op for m, p, op in operations if p == "/api/v1/time"]
    assert time["tags"] == ["operations"]
    assert "503" not in time["responses"]
    assert (await client.get("/api/v1/time")).status_code == 200
