"""Returns: the buyer's request, the operator's approval (refund, goods on hand) or
rejection, and the operators' list."""

import asyncio
from typing import Any

import httpx
import pytest

from app.container import Container
from app.events import service as events
from app.flows.audit import audit
from app.store.keys import ItemKeys
from tests.support.factories import Auth, assert_problem, create_live_item
from tests.support.lifecycle import (
    books,
    closing_sale,
    on_hand,
    order_row,
    rebuild_and_resume,
    redis_bought,
    redis_stock,
    returns_of,
    stored_order,
    transitions,
    wait_past,
)
from tests.support.members import my_points, point_books
from tests.support.payments import paid_order, refund, simulated
from tests.support.returns import (
    approve,
    ask_return,
    move_payment_back,
    reject,
    requested_return,
)
from tests.support.waiting import eventually

REASONS = ["damaged", "wrong_item", "not_as_described", "changed_mind", "other"]


async def test_the_owner_asks_and_the_operator_approves(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(
        client, auth, sku="RET-1", stock=5, seckill_price="19.90", per_user_limit=2
    )
    order_id = await paid_order(client, auth, app_services, item.id, quantity=2)
    assert (await my_points(client, auth, "shopper-1"))["balance"] == 39
    before = await on_hand(app_services, "RET-1")

    response = await ask_return(client, auth, order_id, reason="wrong_item", note="blue, not red")
    assert response.status_code == 201, response.text
    created = response.json()
    assert created == {"id": created["id"], "status": "requested"}

    approved = await approve(client, auth, created["id"])

    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert (body["status"], body["reason"], body["note"]) == (
        "approved",
        "wrong_item",
        "blue, not red",
    )
    assert (body["order_id"], body["decided_by"], body["event_id"]) == (
        order_id,
        "operator",
        item.event_id,
    )
    order = await order_row(app_services, order_id)
    assert order.status == "refunded"
    assert simulated(app_services).refunds == {order.payment_reference: order.amount}
    assert (await transitions(app_services, order_id))[-1] == ("paid", "refunded", "return")
    # The sale is live, yet the returned units go on hand: never resold in the flash sale.
    assert await returns_of(app_services, order_id) == [("restocked", 2, 0)]
    assert await on_hand(app_services, "RET-1") == before + 2
    assert await redis_stock(app_services, item.id) == 3
    assert await redis_bought(app_services, item.id) == {"shopper-1": 2}
    (await books(app_services, item.id)).assert_balanced()
    assert (await my_points(client, auth, "shopper-1"))["balance"] == 0
    assert await point_books(app_services) == {"shopper-1": (0, 0)}


async def test_an_approval_after_the_sale_also_goes_on_hand(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item, ends_at = await closing_sale(client, auth, sku="RET-2", stock=4, per_user_limit=2)
    order_id = await paid_order(client, auth, app_services, item)
    return_id = await requested_return(client, auth, order_id)
    await wait_past(ends_at)
    before = await on_hand(app_services, "RET-2")

    assert (await approve(client, auth, return_id)).status_code == 200

    assert await on_hand(app_services, "RET-2") == before + 1
    assert await returns_of(app_services, order_id) == [("restocked", 1, 0)]
    (await books(app_services, item)).assert_balanced()


async def test_twenty_approvals_at_once_refund_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(
        client, auth, sku="RET-3", stock=5, seckill_price="10.00", per_user_limit=2
    )
    order_id = await paid_order(client, auth, app_services, item.id)
    return_id = await requested_return(client, auth, order_id)
    before = await on_hand(app_services, "RET-3")
    gateway = simulated(app_services)
    calls: list[str] = []
    refund_once = gateway.refund

    async def counted(**kwargs: Any) -> bool:
        calls.append(kwargs["reference"])
        return await refund_once(**kwargs)

    gateway.refund = counted  # type: ignore[method-assign]
    try:
        responses = await asyncio.gather(*(approve(client, auth, return_id) for _ in range(20)))
    finally:
        del gateway.refund

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 19, [r.text for r in responses if r.status_code >= 500]
    for loser in (r for r in responses if r.status_code == 409):
        assert_problem(loser, 409, "invalid_state")
    assert len(calls) == 1
    assert len(gateway.refunds) == 1
    assert await returns_of(app_services, order_id) == [("restocked", 1, 0)]
    assert await on_hand(app_services, "RET-3") == before + 1
    assert (await my_points(client, auth, "shopper-1"))["balance"] == 0
    assert await point_books(app_services) == {"shopper-1": (0, 0)}
    refunds = [t for t in await transitions(app_services, order_id) if t[1] == "refunded"]
    assert refunds == [("paid", "refunded", "return")]


async def test_only_the_owner_asks_and_others_see_no_order(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await paid_order(client, auth, app_services, item.id)

    assert_problem(await ask_return(client, auth, order_id, user_id="stranger"), 404, "not_found")
    # An operator is not the buyer: the buyer asks.
    as_operator = await client.post(
        f"/api/v1/orders/{order_id}/returns", headers=auth.admin(), json={"reason": "other"}
    )
    assert_problem(as_operator, 404, "not_found")
    no_token = await client.post(f"/api/v1/orders/{order_id}/returns", json={"reason": "other"})
    assert_problem(no_token, 401, "unauthorized")
    missing = "01JDZZZZZZZZZZZZZZZZZZZZZZ-424242"
    assert_problem(await ask_return(client, auth, missing), 404, "not_found")


@pytest.mark.parametrize(
    "order_id", ["nope", "0" * 65, "01JDZZZZZZZZZZZZZZZZZZZZZZ-99999999999999999999", "%00"]
)
async def test_weird_order_ids_are_not_found(
    client: httpx.AsyncClient, auth: Auth, order_id: str
) -> None:
    response = await ask_return(client, auth, order_id)
    assert response.status_code in (404, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_one_open_return_per_order_and_a_new_one_after_a_rejection(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await paid_order(client, auth, app_services, item.id)

    first = await asyncio.gather(*(ask_return(client, auth, order_id) for _ in range(5)))
    assert sorted(r.status_code for r in first) == [201, 409, 409, 409, 409]
    assert_problem(next(r for r in first if r.status_code == 409), 409, "invalid_state")
    return_id = next(r.json()["id"] for r in first if r.status_code == 201)

    rejected = await reject(client, auth, return_id, "the photo shows no damage")
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["rejection_reason"]) == (
        "rejected",
        "the photo shows no damage",
    )
    assert (await order_row(app_services, order_id)).status == "paid"
    assert simulated(app_services).refunds == {}

    # Rejected is decided: neither approved nor rejected again.
    assert_problem(await approve(client, auth, return_id), 409, "invalid_state")
    assert_problem(await reject(client, auth, return_id), 409, "invalid_state")
    # The buyer may ask again within the window.
    again = await requested_return(client, auth, order_id, reason="other")
    assert again != return_id
    assert (await approve(client, auth, again)).status_code == 200
    # A refunded order cannot be returned.
    assert_problem(await ask_return(client, auth, order_id), 409, "invalid_state")
    assert_problem(await approve(client, auth, again), 409, "invalid_state")


async def test_only_paid_orders_within_the_window(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=5)
    pending = await stored_order(client, auth, app_services, item.id)
    assert_problem(await ask_return(client, auth, pending), 409, "invalid_state")

    refunded = await paid_order(client, auth, app_services, item.id)
    assert (await refund(client, auth.admin(), refunded)).status_code == 200
    assert_problem(await ask_return(client, auth, refunded), 409, "invalid_state")

    # The window is measured from the payment: 7 days by default.
    inside = await paid_order(client, auth, app_services, item.id)
    await move_payment_back(app_services, inside, days=6.99)
    assert (await ask_return(client, auth, inside)).status_code == 201
    outside = await paid_order(client, auth, app_services, item.id)
    await move_payment_back(app_services, outside, days=7.01)
    late = assert_problem(await ask_return(client, auth, outside), 409, "invalid_state")
    assert "window" in late["detail"]


async def test_an_order_refunded_meanwhile_refuses_the_approval(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await paid_order(client, auth, app_services, item.id)
    return_id = await requested_return(client, auth, order_id)
    assert (await refund(client, auth.admin(), order_id)).status_code == 200

    assert_problem(await approve(client, auth, return_id), 409, "invalid_state")
    assert len(simulated(app_services).refunds) == 1
    # The plain refund's units went back on sale; the failed approval changed nothing.
    assert await returns_of(app_services, order_id) == [("released", 0, 1)]


@pytest.mark.parametrize(
    "body",
    [
        {"reason": "broken"},
        {},
        {"reason": None},
        {"reason": "damaged", "note": 5},
        {"reason": "damaged", "extra": 1},
        {"reason": "damaged", "note": "x" * 1001},
    ],
)
async def test_malformed_requests_are_refused(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, body: dict[str, Any]
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await paid_order(client, auth, app_services, item.id)
    response = await client.post(
        f"/api/v1/orders/{order_id}/returns", headers=auth.headers(), json=body
    )
    assert_problem(response, 422, "validation_error")


async def test_the_largest_note_is_taken_and_any_larger_body_refused(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await paid_order(client, auth, app_services, item.id)
    largest = "é" * app_services.settings.return_note_max_length
    assert (await ask_return(client, auth, order_id, note=largest)).status_code == 201
    huge = "x" * (app_services.settings.max_body_bytes + 1)
    response = await ask_return(client, auth, order_id, note=huge)
    assert response.status_code in (413, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/admin/returns/0/approve", 422, "validation_error"),
        ("/api/v1/admin/returns/abc/approve", 422, "validation_error"),
        ("/api/v1/admin/returns/99999999999999999999/approve", 422, "validation_error"),
        ("/api/v1/admin/returns/424242/approve", 404, "not_found"),
        ("/api/v1/admin/returns/424242/reject", 404, "not_found"),
    ],
)
async def test_decisions_on_unknown_returns(
    client: httpx.AsyncClient, auth: Auth, path: str, status: int, code: str
) -> None:
    response = await client.post(path, headers=auth.admin(), json={"reason": "no"})
    assert_problem(response, status, code)


async def test_decisions_are_the_operators_and_a_rejection_needs_a_reason(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=5)
    order_id = await paid_order(client, auth, app_services, item.id)
    return_id = await requested_return(client, auth, order_id)
    url = f"/api/v1/admin/returns/{return_id}"

    by_buyer = await client.post(f"{url}/approve", headers=auth.headers())
    assert_problem(by_buyer, 403, "forbidden")
    for body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 1001}):
        response = await client.post(f"{url}/reject", headers=auth.admin(), json=body)
        assert_problem(response, 422, "validation_error")
    assert_problem(
        await client.post(f"{url}/reject", headers=auth.admin()), 422, "validation_error"
    )
    assert (await order_row(app_services, order_id)).status == "paid"


async def test_the_operators_list_filters_by_event_and_status(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    first = await create_live_item(client, auth, sku="RET-A", stock=10, per_user_limit=5)
    second = await create_live_item(client, auth, sku="RET-B", stock=10, per_user_limit=5)
    a1 = await requested_return(
        client, auth, await paid_order(client, auth, app_services, first.id), reason="damaged"
    )
    a2 = await requested_return(
        client, auth, await paid_order(client, auth, app_services, first.id), reason="other"
    )
    b1 = await requested_return(
        client, auth, await paid_order(client, auth, app_services, second.id)
    )
    assert (await reject(client, auth, a2)).status_code == 200

    async def listed(**params: Any) -> list[int]:
        response = await client.get("/api/v1/admin/returns", headers=auth.admin(), params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()]

    assert await listed(event_id=first.event_id) == [a2, a1]
    assert await listed(event_id=first.event_id, status="requested") == [a1]
    assert await listed(status="rejected", event_id=first.event_id) == [a2]
    assert await listed(event_id=second.event_id) == [b1]
    assert await listed(event_id=first.event_id, limit=1, offset=1) == [a1]
    for params in ({"status": "lost"}, {"event_id": 0}, {"limit": 0}):
        response = await client.get("/api/v1/admin/returns", headers=auth.admin(), params=params)
        assert_problem(response, 422, "validation_error")
    shopper = await client.get("/api/v1/admin/returns", headers=auth.headers())
    assert_problem(shopper, 403, "forbidden")


async def test_every_reason_is_accepted(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=5)
    for reason in REASONS:
        order_id = await paid_order(client, auth, app_services, item.id)
        assert (await ask_return(client, auth, order_id, reason=reason)).status_code == 201


async def test_the_live_stats_show_returns_and_the_refund_rate(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10, per_user_limit=5)
    url = f"/api/v1/admin/events/{item.event_id}/stats"

    async def shown() -> dict[str, Any]:
        response = await client.get(url, headers=auth.admin())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    before = await shown()
    assert before["refund_rate"] is None
    assert before["returns_by_reason"] == dict.fromkeys(REASONS, 0)
    kept = await paid_order(client, auth, app_services, item.id)
    returned = await paid_order(client, auth, app_services, item.id)
    await requested_return(client, auth, kept, reason="other")
    assert (await approve(client, auth, await requested_return(client, auth, returned))).is_success

    async def updated() -> bool:
        rate: float | None = (await shown())["refund_rate"]
        return rate == 0.5

    await eventually(updated)
    assert (await shown())["returns_by_reason"] == {
        **dict.fromkeys(REASONS, 0),
        "damaged": 1,
        "other": 1,
    }


async def test_a_rebuilt_sale_keeps_returned_units_sold(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    # Returned goods went on hand, not into the sale: a sale rebuilt from Postgres after
    # Redis lost it must not put them on sale too (nor give the buyer their limit back).
    item = await create_live_item(client, auth, sku="RET-R", stock=5, per_user_limit=2)
    order_id = await paid_order(client, auth, app_services, item.id, quantity=2)
    assert (await approve(client, auth, await requested_return(client, auth, order_id))).is_success
    assert await redis_stock(app_services, item.id) == 3
    keys = ItemKeys(app_services.settings.redis_key_prefix, item.id)
    await app_services.redis.delete(*keys.all())  # Redis lost the sale
    async with app_services.sessionmaker() as session:
        assert await events.warm_up(session=session, services=app_services) == 0  # frozen
    assert len(await rebuild_and_resume(app_services)) == 1

    assert await redis_stock(app_services, item.id) == 3
    assert await redis_bought(app_services, item.id) == {"shopper-1": 2}
    (await books(app_services, item.id)).assert_balanced()
    report = await audit(services=app_services)
    assert report.ok, report.problems


async def test_a_shipped_order_is_returned_and_refunded(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """A shipped order is the usual return (the goods are with the buyer): approved, it
    is refunded from `shipped`, and its units go on hand."""
    item = await create_live_item(client, auth, sku="RET-SHIP", stock=3, per_user_limit=1)
    order_id = await paid_order(client, auth, app_services, item.id)
    shipped = await client.post(
        f"/api/v1/admin/orders/{order_id}/ship",
        json={"carrier": "SF Express", "tracking_number": "SF1234567890"},
        headers=auth.admin(),
    )
    assert shipped.status_code == 200, shipped.text
    before = await on_hand(app_services, "RET-SHIP")

    return_id = await requested_return(client, auth, order_id, reason="not_as_described")
    approved = await approve(client, auth, return_id)

    assert approved.status_code == 200, approved.text
    assert (await order_row(app_services, order_id)).status == "refunded"
    assert (await transitions(app_services, order_id))[-1] == ("shipped", "refunded", "return")
    assert await on_hand(app_services, "RET-SHIP") == before + 1
    (await books(app_services, item.id)).assert_balanced()
