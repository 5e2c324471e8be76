"""Mid-sale controls through the API: PATCH an item and an event, end a sale; each change
reaches the live sale, Postgres and the ledger, and the audit log."""

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from sqlalchemy import func, select

from app.container import Container
from app.events.models import EventItem
from app.inventory.models import StockMovement
from app.store.keys import ItemKeys
from tests.support.coupons import create_coupon
from tests.support.factories import (
    Auth,
    assert_problem,
    buy,
    create_event,
    item_spec,
    problem_fields,
)
from tests.support.lifecycle import stored_order


async def patch_item(
    client: httpx.AsyncClient, auth: Auth, item_id: int, body: dict[str, Any]
) -> httpx.Response:
    return await client.patch(f"/api/v1/admin/items/{item_id}", json=body, headers=auth.admin())


async def audit_log(
    client: httpx.AsyncClient, auth: Auth, event_id: int | None = None
) -> list[dict[str, Any]]:
    params = {"event_id": event_id} if event_id is not None else {}
    response = await client.get("/api/v1/admin/audit-log", params=params, headers=auth.admin())
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()
    return entries


async def test_add_stock_sells_more_and_is_booked_and_logged(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await client.post(
        "/api/v1/admin/skus",
        json={"sku": "PHONE-1", "name": "Phone", "on_hand": 13},
        headers=auth.admin(),
    )
    event = await create_event(client, auth, items=[item_spec(stock=3, per_user_limit=5)])
    item = event.items[0]
    assert (await buy(client, auth, item.id, quantity=3)).status_code == 202
    assert_problem(await buy(client, auth, item.id, user_id="u2"), 409, "sold_out")

    response = await patch_item(client, auth, item.id, {"add_stock": 4})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["stock"], body["remaining"], body["state"]) == (7, 4, "live")
    assert (await buy(client, auth, item.id, user_id="u2", quantity=4)).status_code == 202
    async with app_services.sessionmaker() as session:
        allocated = await session.scalar(
            select(func.sum(StockMovement.item_stock_delta)).where(
                StockMovement.item_id == item.id, StockMovement.reason == "allocated"
            )
        )
    assert allocated == 7
    sku = (await client.get("/api/v1/admin/skus/PHONE-1", headers=auth.admin())).json()
    assert sku["on_hand"] == 6
    [entry, created] = await audit_log(client, auth, event.id)
    assert (entry["actor"], entry["action"], entry["target"]) == (
        "operator",
        "item.update",
        f"item:{item.id}",
    )
    assert entry["before"] == {"stock": 3}
    assert entry["after"] == {"stock": 7, "add_stock": 4}
    assert created["action"] == "event.create"


async def test_add_stock_beyond_the_sku_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    event = await create_event(client, auth, items=[item_spec(stock=3)])
    item = event.items[0]

    body = assert_problem(
        await patch_item(client, auth, item.id, {"add_stock": 1, "per_user_limit": 1}),
        409,
        "insufficient_stock",
    )

    assert "PHONE-1" in body["detail"]
    after = (await client.get(f"/api/v1/items/{item.id}")).json()
    assert (after["stock"], after["remaining"], after["per_user_limit"]) == (3, 3, 2)
    assert [e["action"] for e in await audit_log(client, auth, event.id)] == ["event.create"]


async def test_limit_and_price_bind_later_purchases_only(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_event(client, auth, items=[item_spec(stock=10, per_user_limit=3)])
    item = event.items[0]
    assert (await buy(client, auth, item.id, user_id="a", quantity=2)).status_code == 202

    response = await patch_item(
        client, auth, item.id, {"per_user_limit": 1, "seckill_price": "999.00"}
    )

    assert response.status_code == 200, response.text
    assert (response.json()["per_user_limit"], response.json()["seckill_price"]) == (1, "999.00")
    assert_problem(await buy(client, auth, item.id, user_id="a"), 409, "limit_exceeded")
    later = await buy(client, auth, item.id, user_id="b")
    assert later.status_code == 202
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    entries = await app_services.redis.xrange(keys.orders) or []
    prices = [(fields or {})["unit_price"] for _, fields in entries]
    assert prices == ["1999.00", "999.00"]
    [entry, _] = await audit_log(client, auth)
    assert entry["before"] == {"per_user_limit": 3, "seckill_price": "1999.00"}
    assert entry["after"] == {"per_user_limit": 1, "seckill_price": "999.00"}


async def test_low_stock_threshold_is_set_and_cleared(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    item = (await create_event(client, auth)).items[0]

    set_ = await patch_item(client, auth, item.id, {"low_stock_threshold": 300})
    cleared = await patch_item(client, auth, item.id, {"low_stock_threshold": None})

    assert set_.json()["low_stock_threshold"] == 300
    assert cleared.json()["low_stock_threshold"] is None


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"body"}),
        ({"add_stock": 0}, {"add_stock"}),
        ({"add_stock": -5}, {"add_stock"}),
        ({"add_stock": "5"}, {"add_stock"}),
        ({"add_stock": None}, {"body"}),
        ({"per_user_limit": 0}, {"per_user_limit"}),
        ({"seckill_price": "0"}, {"seckill_price"}),
        ({"seckill_price": "1.234"}, {"seckill_price"}),
        ({"low_stock_threshold": -1}, {"low_stock_threshold"}),
        ({"stock": 5}, {"stock"}),
    ],
)
async def test_bad_item_changes_are_validation_problems(
    client: httpx.AsyncClient, auth: Auth, body: dict[str, Any], fields: set[str]
) -> None:
    item = (await create_event(client, auth)).items[0]

    problem = assert_problem(await patch_item(client, auth, item.id, body), 422, "validation_error")

    assert problem_fields(problem) == fields


async def test_price_above_list_price_is_refused(client: httpx.AsyncClient, auth: Auth) -> None:
    item = (await create_event(client, auth)).items[0]

    problem = assert_problem(
        await patch_item(client, auth, item.id, {"seckill_price": "3000.00"}),
        422,
        "validation_error",
    )

    assert problem_fields(problem) == {"seckill_price"}


async def test_controls_need_an_operator_and_an_existing_target(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    item = (await create_event(client, auth)).items[0]

    assert_problem(
        await client.patch(f"/api/v1/admin/items/{item.id}", json={"add_stock": 1}),
        401,
        "unauthorized",
    )
    assert_problem(
        await client.patch(
            f"/api/v1/admin/items/{item.id}", json={"add_stock": 1}, headers=auth.headers()
        ),
        403,
        "forbidden",
    )
    assert_problem(await patch_item(client, auth, 999_999, {"add_stock": 1}), 404, "not_found")
    assert_problem(
        await client.patch(
            "/api/v1/admin/events/999999",
            json={"ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
            headers=auth.admin(),
        ),
        404,
        "not_found",
    )
    assert_problem(
        await client.post("/api/v1/admin/events/999999/end", headers=auth.admin()),
        404,
        "not_found",
    )


async def test_extend_and_shorten_an_event(client: httpx.AsyncClient, auth: Auth) -> None:
    event = await create_event(client, auth, lasts=timedelta(minutes=10))
    item = event.items[0]
    later = datetime.now(UTC) + timedelta(hours=3)

    response = await client.patch(
        f"/api/v1/admin/events/{event.id}",
        json={"ends_at": later.isoformat()},
        headers=auth.admin(),
    )

    assert response.status_code == 200, response.text
    assert datetime.fromisoformat(response.json()["ends_at"]) == later
    assert (await buy(client, auth, item.id)).status_code == 202
    [entry, _] = await audit_log(client, auth, event.id)
    assert entry["action"] == "event.update"
    assert datetime.fromisoformat(entry["after"]["ends_at"]) == later


@pytest.mark.parametrize(
    "ends_at",
    [
        lambda e: e.starts_at.isoformat(),
        lambda e: (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
        lambda e: "2026-13-01T00:00:00Z",
        lambda e: "2030-01-01T00:00:00",  # no zone
        lambda e: None,
    ],
)
async def test_bad_event_ends_are_validation_problems(
    client: httpx.AsyncClient, auth: Auth, ends_at: Any
) -> None:
    event = await create_event(client, auth)

    problem = assert_problem(
        await client.patch(
            f"/api/v1/admin/events/{event.id}",
            json={"ends_at": ends_at(event)},
            headers=auth.admin(),
        ),
        422,
        "validation_error",
    )

    assert problem_fields(problem) == {"ends_at"}


async def test_end_a_sale_early_then_nothing_more_changes(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    event = await create_event(client, auth)
    item = event.items[0]

    response = await client.post(f"/api/v1/admin/events/{event.id}/end", headers=auth.admin())

    assert response.status_code == 200, response.text
    assert response.json()["state"] == "ended"
    assert_problem(await buy(client, auth, item.id), 409, "ended")
    assert_problem(
        await client.post(f"/api/v1/admin/events/{event.id}/end", headers=auth.admin()),
        409,
        "invalid_state",
    )
    assert_problem(await patch_item(client, auth, item.id, {"add_stock": 1}), 409, "invalid_state")
    assert [e["action"] for e in await audit_log(client, auth, event.id)] == [
        "event.end",
        "event.create",
    ]


async def test_end_an_upcoming_sale(client: httpx.AsyncClient, auth: Auth) -> None:
    event = await create_event(client, auth, starts_in=timedelta(hours=1))

    response = await client.post(f"/api/v1/admin/events/{event.id}/end", headers=auth.admin())

    assert response.status_code == 200, response.text
    assert response.json()["state"] == "ended"
    assert_problem(await buy(client, auth, event.items[0].id), 409, "ended")


async def test_pause_and_resume_are_logged_with_before_and_after(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    event = await create_event(client, auth)

    for action in ("pause", "pause", "resume"):
        response = await client.post(
            f"/api/v1/admin/events/{event.id}/{action}", headers=auth.admin()
        )
        assert response.status_code == 200

    log = await audit_log(client, auth, event.id)
    assert [(e["action"], e["before"], e["after"]) for e in log] == [
        ("event.resume", {"paused": True}, {"paused": False}),
        ("event.pause", {"paused": False}, {"paused": True}),
        ("event.create", None, ANY),
    ]
    assert all(datetime.fromisoformat(e["at"]) for e in log)


async def terms_version(services: Container, item_id: int) -> int:
    async with services.sessionmaker() as session:
        version = await session.scalar(
            select(EventItem.terms_version).where(EventItem.id == item_id)
        )
    assert version is not None
    return version


async def test_a_control_that_changes_nothing_is_neither_applied_nor_logged(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_event(
        client, auth, items=[item_spec(per_user_limit=2, seckill_price="1999.00")]
    )
    item = event.items[0]
    version = await terms_version(app_services, item.id)
    admin = auth.admin()

    unchanged = [
        await client.post(f"/api/v1/admin/events/{event.id}/resume", headers=admin),
        await patch_item(client, auth, item.id, {"per_user_limit": 2, "seckill_price": "1999.00"}),
        await patch_item(client, auth, item.id, {"low_stock_threshold": None}),
        await client.patch(
            f"/api/v1/admin/events/{event.id}",
            json={"ends_at": event.ends_at.isoformat()},
            headers=admin,
        ),
    ]

    assert [r.status_code for r in unchanged] == [200] * 4, [r.text for r in unchanged]
    assert unchanged[0].json()["paused"] is False
    assert await terms_version(app_services, item.id) == version
    assert [e["action"] for e in await audit_log(client, auth, event.id)] == ["event.create"]

    paused = await client.post(f"/api/v1/admin/events/{event.id}/pause", headers=admin)
    again = await client.post(f"/api/v1/admin/events/{event.id}/pause", headers=admin)
    partly = await patch_item(
        client, auth, item.id, {"per_user_limit": 2, "seckill_price": "999.00"}
    )

    assert (paused.status_code, again.status_code, partly.status_code) == (200, 200, 200)
    assert again.json()["paused"] is True
    log = await audit_log(client, auth, event.id)
    assert [(e["action"], e["before"], e["after"]) for e in log[:2]] == [
        ("item.update", {"seckill_price": "1999.00"}, {"seckill_price": "999.00"}),
        ("event.pause", {"paused": False}, {"paused": True}),
    ]
    assert len(log) == 3


async def test_audit_log_pages_with_a_cursor(client: httpx.AsyncClient, auth: Auth) -> None:
    event = await create_event(client, auth)
    for action in ("pause", "resume", "pause", "resume"):
        await client.post(f"/api/v1/admin/events/{event.id}/{action}", headers=auth.admin())

    first = await client.get("/api/v1/admin/audit-log", params={"limit": 3}, headers=auth.admin())
    cursor = first.headers["X-Next-Cursor"]
    second = await client.get(
        "/api/v1/admin/audit-log", params={"limit": 3, "cursor": cursor}, headers=auth.admin()
    )

    ids = [e["id"] for e in first.json() + second.json()]
    assert len(ids) == 5
    assert ids == sorted(ids, reverse=True)
    assert "X-Next-Cursor" not in second.headers
    assert_problem(
        await client.get("/api/v1/admin/audit-log", params={"cursor": "abc"}, headers=auth.admin()),
        422,
        "validation_error",
    )
    assert_problem(
        await client.get("/api/v1/admin/audit-log", headers=auth.headers()), 403, "forbidden"
    )


async def test_refunds_operator_cancels_and_grants_are_logged(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_event(client, auth, items=[item_spec(stock=10)])
    item_id = event.items[0].id
    paid = await stored_order(client, auth, app_services, item_id, user_id="p")
    pending = await stored_order(client, auth, app_services, item_id, user_id="c")
    assert (
        await client.post(f"/api/v1/orders/{paid}/pay", headers=auth.headers("p"))
    ).status_code == 200
    # A shopper's own cancellation is no operator action: not logged.
    own = await stored_order(client, auth, app_services, item_id, user_id="o")
    assert (
        await client.post(f"/api/v1/orders/{own}/cancel", headers=auth.headers("o"))
    ).status_code == 200

    refund = await client.post(f"/api/v1/admin/orders/{paid}/refund", headers=auth.admin())
    cancel = await client.post(f"/api/v1/admin/orders/{pending}/cancel", headers=auth.admin())

    assert (refund.status_code, cancel.status_code) == (200, 200)
    log = await audit_log(client, auth, event.id)
    assert [(e["action"], e["target"], e["after"]["status"]) for e in log[:2]] == [
        ("order.cancel", f"order:{pending}", "cancelled"),
        ("order.refund", f"order:{paid}", "refunded"),
    ]
    assert log[1]["after"]["amount"] == "1999.00"
    assert [e["action"] for e in log[2:]] == ["event.create"]


async def test_coupon_grants_are_logged(client: httpx.AsyncClient, auth: Auth) -> None:
    coupon = await create_coupon(client, auth)

    response = await client.post(
        f"/api/v1/admin/coupons/{coupon.id}/grants",
        json={"user_ids": ["a", "b", "a"]},
        headers=auth.admin(),
    )

    assert response.status_code == 202, response.text
    [entry, *_] = await audit_log(client, auth)
    assert (entry["action"], entry["target"], entry["actor"]) == (
        "coupon.grant",
        f"coupon:{coupon.id}",
        "operator",
    )
    assert entry["after"]["job_id"] == response.json()["job_id"]
    assert entry["after"]["users"] == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"seckill_price": "9999999999.99"}, "seckill_price"),
        ({"per_user_limit": 1000}, "per_user_limit"),
        ({"seckill_price": "9000000000.00", "per_user_limit": 2}, "seckill_price"),
    ],
)
async def test_a_change_past_the_price_times_limit_ceiling_is_refused_like_creation(
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    body: dict[str, Any],
    field: str,
) -> None:
    """An order's amount (price x quantity, the quantity at most the limit) must fit the
    orders table, as creation checks: otherwise a 202 for an order Postgres refuses."""
    spec = item_spec(list_price="9999999999.99", seckill_price="100000000.00", per_user_limit=2)
    item = (await create_event(client, auth, items=[spec])).items[0]

    problem = assert_problem(await patch_item(client, auth, item.id, body), 422, "validation_error")

    assert problem_fields(problem) == {field}
    after = (await client.get(f"/api/v1/items/{item.id}")).json()
    assert (after["seckill_price"], after["per_user_limit"]) == ("100000000.00", 2)
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    assert await app_services.redis.hmget(keys.sale, ["price", "limit"]) == ["100000000.00", "2"]
    assert [e["action"] for e in await audit_log(client, auth, item.event_id)] == ["event.create"]


@pytest.mark.parametrize("control", ["pause", "end"])
async def test_an_event_change_redis_refuses_on_one_item_is_taken_back_from_the_others(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, control: str
) -> None:
    """503 means nothing changed: items the change reached before Redis failed on another
    get their terms back at once, not only at the worker's next check."""
    event = await create_event(client, auth, items=[item_spec(sku="A-1"), item_spec(sku="B-1")])
    first, second = event.items
    prefix = app_services.settings.redis_key_prefix
    terms_before = await app_services.redis.hgetall(ItemKeys(prefix, first.id).sale)
    # Redis fails on the second item: its sale key holds no hash, every script on it errs.
    await app_services.redis.delete(ItemKeys(prefix, second.id).sale)
    await app_services.redis.set(ItemKeys(prefix, second.id).sale, "not a sale")

    answer = await client.post(f"/api/v1/admin/events/{event.id}/{control}", headers=auth.admin())

    assert_problem(answer, 503, "recovering")
    after = await app_services.redis.hgetall(ItemKeys(prefix, first.id).sale)
    changed = {k for k in after if after[k] != terms_before.get(k)}
    assert changed == {"terms_version"}, "the first item's terms are back as they were"
    assert (await client.get(f"/api/v1/events/{event.id}")).json()["state"] == "live"
    assert (await buy(client, auth, first.id)).status_code == 202
    assert [e["action"] for e in await audit_log(client, auth, event.id)] == ["event.create"]
