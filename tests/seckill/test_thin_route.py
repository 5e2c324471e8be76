"""The thin purchase route (app/seckill/thin_route.py) answers exactly as the framework's
route does, and answers the well-formed purchases itself."""

import functools
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.processes.api import create_app
from app.seckill.thin_route import ThinPurchaseRoute
from tests.support.factories import Auth, create_live_item
from tests.support.thin import started_client, thin_in_front

# (name, path under the item, headers beyond the buyer's token, body): each is sent to
# both routes in this order, on an item of 4 units with a limit of 2.
Request = tuple[str, str, dict[str, str], bytes | None]
SCENARIO: list[Request] = [
    ("plain", "", {}, b'{"quantity": 1}'),
    ("no body", "", {}, None),
    ("over the limit", "", {}, b'{"quantity": 1}'),
    ("keyed, other user", "", {"X-User": "u2", "Idempotency-Key": "k-1"}, b'{"quantity": 1}'),
    ("keyed replay", "", {"X-User": "u2", "Idempotency-Key": "k-1"}, b'{"quantity": 1}'),
    ("keyed, other quantity", "", {"X-User": "u2", "Idempotency-Key": "k-1"}, b'{"quantity": 2}'),
    ("quantity 0", "", {"X-User": "u3"}, b'{"quantity": 0}'),
    ("quantity true", "", {"X-User": "u3"}, b'{"quantity": true}'),
    ("quantity 1.0", "", {"X-User": "u3"}, b'{"quantity": 1.0}'),
    ("quantity string", "", {"X-User": "u3"}, b'{"quantity": "1"}'),
    ("quantity null", "", {"X-User": "u3"}, b'{"quantity": null}'),
    ("quantity huge", "", {"X-User": "u3"}, b'{"quantity": 99999999999999999999999}'),
    ("above the item's limit", "", {"X-User": "u3"}, b'{"quantity": 3}'),
    ("extra field", "", {"X-User": "u3"}, b'{"quantity": 1, "price": 1}'),
    ("coupon", "", {"X-User": "u3"}, b'{"coupon": "TENOFF"}'),
    ("coupon null", "", {"X-User": "u3"}, b'{"quantity": 1, "coupon": null}'),
    ("null body", "", {"X-User": "u4"}, b"null"),
    ("array body", "", {"X-User": "u4"}, b"[]"),
    ("bad JSON", "", {"X-User": "u4"}, b'{"quantity": '),
    ("bad UTF-8", "", {"X-User": "u4"}, b'{"quantity": "\xff"}'),
    ("text body", "", {"X-User": "u4", "Content-Type": "text/plain"}, b'{"quantity": 1}'),
    ("json+ body", "", {"X-User": "u4", "Content-Type": "application/x+json"}, b"{}"),
    ("key too long", "", {"X-User": "u4", "Idempotency-Key": "k" * 129}, None),
    ("key with a colon", "", {"X-User": "u4", "Idempotency-Key": "a:b"}, None),
    ("no token", "", {"X-User": ""}, None),
    ("bad token", "", {"X-User": "", "Authorization": "Bearer nope"}, None),
    ("basic auth", "", {"X-User": "", "Authorization": "Basic dTpw"}, None),
    ("lower-case bearer", "", {"X-User": "u5", "X-Scheme": "bearer"}, None),
    ("bearer, two spaces", "", {"X-User": "u5", "X-Scheme": "Bearer "}, None),
    ("bearer, a tab after the token", "", {"X-User": "u8", "X-Token-Tail": "\t"}, None),
    ("JSON body, no Content-Type", "", {"X-User": "u8", "Content-Type": ""}, b'{"quantity": 1}'),
    ("empty body, no Content-Type", "", {"X-User": "u8", "Content-Type": ""}, b""),
    ("no such item", "/../999999999", {"X-User": "u4"}, None),
    ("item 0", "/../0", {"X-User": "u4"}, None),
    ("item with a leading zero", "/../0{item}", {"X-User": "u4"}, None),
    ("item past bigint", "/../9223372036854775808", {"X-User": "u4"}, None),
    ("item not a number", "/../abc", {"X-User": "u4"}, None),
    ("sold out", "", {"X-User": "u6"}, b'{"quantity": 1}'),
    ("sold out, replayed key", "", {"X-User": "u2", "Idempotency-Key": "k-1"}, None),
    ("a query string", "?quantity=1", {"X-User": "u7"}, None),
    ("NUL in the query", "?x=%00", {"X-User": "u7"}, None),
    ("oversized body", "", {"X-User": "u7"}, b'{"quantity": 1' + b" " * 70_000 + b"}"),
]


def _path(item_id: int, tail: str) -> str:
    if tail.startswith("?"):
        return f"/api/v1/items/{item_id}/purchase{tail}"
    if tail.startswith("/../"):
        item = tail.removeprefix("/../").replace("{item}", str(item_id))
        return f"/api/v1/items/{item}/purchase"
    return f"/api/v1/items/{item_id}/purchase"


async def _run(client: httpx.AsyncClient, auth: Auth, sku: str) -> list[tuple[str, int, Any]]:
    item = await create_live_item(client, auth, sku=sku, stock=4, per_user_limit=2)
    # u1 takes 2 ("plain", "no body"), u2 1 ("keyed"), u3 1 ("coupon null"): sold out.
    answers: list[tuple[str, int, Any]] = []
    order_ids: dict[str, str] = {}
    for name, tail, extra, body in SCENARIO:
        extra = dict(extra)
        user = extra.pop("X-User", "u1")
        scheme = extra.pop("X-Scheme", "Bearer")
        headers = auth.headers(user) if user else {}
        if user and scheme != "Bearer":
            headers["Authorization"] = headers["Authorization"].replace("Bearer", scheme)
        if user:
            headers["Authorization"] += extra.pop("X-Token-Tail", "")
        headers.update(extra)
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        if headers.get("Content-Type") == "":  # sent with none at all
            del headers["Content-Type"]
        response = await client.post(_path(item.id, tail), content=body, headers=headers)
        answer: Any = response.json()
        text = re.sub(rf"(Item |items/0*){item.id}\b", r"\1{item}", json.dumps(answer))
        for order_id, alias in order_ids.items():
            text = text.replace(order_id, alias)
        answer = json.loads(text)
        if isinstance(answer, dict) and "order_id" in answer:
            answer["order_id"] = order_ids.setdefault(
                answer["order_id"], f"order-{len(order_ids) + 1}"
            )
        # Every header but the body's length (order ids differ in length between runs).
        kept = sorted((k, v) for k, v in response.headers.items() if k != "content-length")
        answers.append((name, response.status_code, {"body": answer, "headers": kept}))
    return answers


@pytest.fixture
async def framework_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The same app with every purchase through FastAPI's route (its own Redis keys)."""
    framework = create_app(
        settings.model_copy(
            update={
                "thin_purchase_route": False,
                "redis_key_prefix": f"{settings.redis_key_prefix}-framework",
            }
        )
    )
    async with started_client(framework) as c:
        yield c


async def test_both_routes_answer_every_request_alike(
    client: httpx.AsyncClient, framework_client: httpx.AsyncClient, auth: Auth
) -> None:
    thin = await _run(client, auth, "THIN")
    framework = await _run(framework_client, auth, "FRAMEWORK")
    differing = [ours[0] for ours, theirs in zip(thin, framework, strict=True) if ours != theirs]
    assert differing == []
    assert thin == framework
    statuses = {name: status for name, status, _ in thin}
    assert statuses["plain"] == statuses["keyed replay"] == 202
    assert statuses["over the limit"] == 409
    assert statuses["sold out"] == 409
    assert statuses["sold out, replayed key"] == 202
    assert statuses["no token"] == statuses["bad token"] == 401
    assert statuses["coupon null"] == 202
    assert statuses["above the item's limit"] == 422
    assert statuses["oversized body"] == 413
    # The token is taken (RFC 6750: one or more spaces), so the sale answers: sold out.
    assert statuses["bearer, two spaces"] == statuses["bearer, a tab after the token"] == 409
    assert statuses["JSON body, no Content-Type"] == 422
    assert statuses["empty body, no Content-Type"] == 409


async def test_well_formed_purchases_never_reach_the_framework(
    settings: Settings, auth: Auth
) -> None:
    framework = create_app(settings.model_copy(update={"thin_purchase_route": False}))
    layer = functools.partial(ThinPurchaseRoute, max_body_bytes=settings.max_body_bytes)
    async with thin_in_front(framework, layer) as (c, reached):
        # The item is created through the framework (an admin route): reached once.
        item = await create_live_item(c, auth, stock=2, per_user_limit=1)
        reached.clear()
        path = f"/api/v1/items/{item.id}/purchase"
        well_formed: list[dict[str, Any]] = [
            {"json": {"quantity": 1}, "headers": auth.headers("a")},
            {"headers": auth.headers("b")},
            {"json": {}, "headers": {**auth.headers("c"), "Idempotency-Key": "x-1"}},
            {"json": {"quantity": 1}, "headers": auth.headers("d")},  # sold out
            {"headers": {"Authorization": "Bearer nope"}},  # 401
            {"headers": {"Authorization": auth.headers("f")["Authorization"].replace(" ", "  ")}},
        ]
        statuses = [(await c.post(path, **request)).status_code for request in well_formed]
        assert statuses == [202, 202, 409, 409, 401, 409]
        assert reached == []
        unusual: list[dict[str, Any]] = [
            {"json": {"quantity": 0}, "headers": auth.headers("e")},
            {"json": {"coupon": "X"}, "headers": auth.headers("e")},
            {"headers": {}},
            {"headers": {**auth.headers("e"), "Idempotency-Key": "a b"}},
            {"content": b'{"quantity": 1}', "headers": auth.headers("e")},  # no type
        ]
        statuses = [(await c.post(path, **request)).status_code for request in unusual]
        assert statuses == [422, 422, 401, 422, 422]
        assert reached == [path] * len(unusual)
