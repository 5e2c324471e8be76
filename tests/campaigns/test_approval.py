"""Campaign approval: draft -> pending -> approved by one operator of each group, never the
submitter; until then nothing of the campaign is visible or sells (decided in Redis)."""

from typing import Any

import httpx
import pytest

from app.container import Container
from tests.support.campaigns import FINANCE, OPS, PLANNER, approve_campaign, create_campaign
from tests.support.coupons import coupon_spec
from tests.support.factories import Auth, create_event
from tests.support.lifecycle import store_orders


def headers(auth: Auth, operator: tuple[str, tuple[str, ...]]) -> dict[str, str]:
    user_id, groups = operator
    return auth.operator(user_id, *groups)


async def step(
    client: httpx.AsyncClient,
    auth: Auth,
    campaign_id: int,
    action: str,
    operator: tuple[str, tuple[str, ...]],
    **body: Any,
) -> httpx.Response:
    return await client.post(
        f"/api/v1/admin/campaigns/{campaign_id}/{action}",
        headers=headers(auth, operator),
        json=body or None,
    )


async def test_a_draft_event_never_sells_even_to_a_token_that_knows_its_item(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    campaign = await create_campaign(client, auth)
    event = await create_event(client, auth, campaign_id=campaign["id"])
    item_id = event.items[0].id
    assert event.campaign_id == campaign["id"]

    buy = await client.post(
        f"/api/v1/items/{item_id}/purchase", json={"quantity": 1}, headers=auth.headers("u1")
    )
    assert buy.status_code == 404, buy.text
    assert buy.json()["code"] == "not_found"
    # The framework's route (a body the thin route leaves to it) answers the same.
    odd = await client.post(
        f"/api/v1/items/{item_id}/purchase",
        json={"quantity": 1, "coupon": None},
        headers={**auth.headers("u1"), "X-Channel": "app"},
    )
    assert odd.status_code == 404, odd.text
    for path in (
        f"/api/v1/events/{event.id}",
        f"/api/v1/items/{item_id}",
        f"/api/v1/events/{event.id}/live",
    ):
        assert (await client.get(path)).status_code == 404, path
    listed = (await client.get("/api/v1/events")).json()
    assert event.id not in [e["id"] for e in listed]
    # Operators see it.
    assert (await client.get("/api/v1/admin/events", headers=auth.admin())).status_code == 200

    # Still nothing after submission and one approval.
    assert (await step(client, auth, campaign["id"], "submit", PLANNER)).status_code == 200
    assert (await step(client, auth, campaign["id"], "approve", OPS)).status_code == 200
    held = await client.post(
        f"/api/v1/items/{item_id}/purchase", json={"quantity": 1}, headers=auth.headers("u1")
    )
    assert held.status_code == 404
    assert await store_orders(services) == 0

    approved = await step(client, auth, campaign["id"], "approve", FINANCE)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    sold = await client.post(
        f"/api/v1/items/{item_id}/purchase", json={"quantity": 1}, headers=auth.headers("u1")
    )
    assert sold.status_code == 202, sold.text
    assert (await client.get(f"/api/v1/events/{event.id}")).status_code == 200
    assert event.id in [e["id"] for e in (await client.get("/api/v1/events")).json()]


async def test_a_draft_coupon_is_never_claimed_or_listed(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    campaign = await create_campaign(client, auth)
    created = await client.post(
        "/api/v1/admin/coupons",
        json=coupon_spec(campaign_id=campaign["id"]),
        headers=auth.admin(),
    )
    assert created.status_code == 201, created.text
    coupon_id = created.json()["id"]
    claim = await client.post(f"/api/v1/coupons/{coupon_id}/claim", headers=auth.headers("u1"))
    assert claim.status_code == 404, claim.text
    assert (await client.get(f"/api/v1/coupons/{coupon_id}")).status_code == 404
    assert coupon_id not in [c["id"] for c in (await client.get("/api/v1/coupons")).json()]

    await approve_campaign(client, auth, campaign["id"])
    claim = await client.post(f"/api/v1/coupons/{coupon_id}/claim", headers=auth.headers("u1"))
    assert claim.status_code == 201, claim.text
    assert coupon_id in [c["id"] for c in (await client.get("/api/v1/coupons")).json()]


async def test_approvers_are_distinct_operators_of_each_group_and_never_the_submitter(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    campaign = await create_campaign(client, auth)
    cid = campaign["id"]
    # Not submitted yet.
    assert (await step(client, auth, cid, "approve", OPS)).status_code == 409
    submitter = ("sam", ("ops", "finance"))
    assert (await step(client, auth, cid, "submit", submitter)).status_code == 200
    assert (await step(client, auth, cid, "submit", submitter)).status_code == 409
    # The submitter cannot approve, whatever their groups.
    refused = await step(client, auth, cid, "approve", submitter)
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    # An operator of no approving group, and a shopper, cannot either.
    assert (await step(client, auth, cid, "approve", ("nobody", ("marketing",)))).status_code == 403
    shopper = await client.post(
        f"/api/v1/admin/campaigns/{cid}/approve", headers=auth.headers("u1")
    )
    assert shopper.status_code == 403
    # One operator in both groups gives one approval only.
    both = ("bea", ("ops", "finance"))
    first = await step(client, auth, cid, "approve", both)
    assert first.status_code == 200
    assert first.json()["status"] == "pending_approval"
    assert first.json()["missing_approvals"] == ["finance"]
    assert (await step(client, auth, cid, "approve", both)).status_code == 409
    # A second ops operator is not finance.
    assert (await step(client, auth, cid, "approve", ("oscar", ("ops",)))).status_code == 403
    done = await step(client, auth, cid, "approve", FINANCE)
    assert done.status_code == 200
    body = done.json()
    assert body["status"] == "approved"
    assert sorted((a["group"], a["actor"]) for a in body["approvals"]) == [
        ("finance", "fred-finance"),
        ("ops", "bea"),
    ]
    assert (await step(client, auth, cid, "approve", ("x", ("finance",)))).status_code == 409


async def test_a_rejection_needs_a_reason_returns_to_draft_and_starts_approvals_over(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    campaign = await create_campaign(client, auth)
    cid = campaign["id"]
    await step(client, auth, cid, "submit", PLANNER)
    await step(client, auth, cid, "approve", OPS)
    no_reason = await client.post(
        f"/api/v1/admin/campaigns/{cid}/reject", headers=headers(auth, FINANCE), json={}
    )
    assert no_reason.status_code == 422
    rejected = await step(client, auth, cid, "reject", FINANCE, reason="Budget too high")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "draft"
    assert rejected.json()["approvals"] == []
    # Approving a draft is refused; a new submission needs both groups again.
    assert (await step(client, auth, cid, "approve", FINANCE)).status_code == 409
    await step(client, auth, cid, "submit", PLANNER)
    after_one = await step(client, auth, cid, "approve", FINANCE)
    assert after_one.json()["status"] == "pending_approval"
    assert after_one.json()["missing_approvals"] == ["ops"]

    log = await client.get("/api/v1/admin/audit-log", headers=auth.admin())
    actions = [(a["action"], a["actor"]) for a in log.json() if a["target"] == f"campaign:{cid}"]
    assert actions == [
        ("campaign.approve", "fred-finance"),
        ("campaign.submit", "planner"),
        ("campaign.reject", "fred-finance"),
        ("campaign.approve", "olivia-ops"),
        ("campaign.submit", "planner"),
        ("campaign.create", "planner"),
    ]
    reject = next(a for a in log.json() if a["action"] == "campaign.reject")
    assert reject["after"]["reason"] == "Budget too high"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timezone", "Mars/Olympus"),
        ("rules", ""),
        ("channels", [{"code": "other", "cost": "1.00"}]),
        ("channels", [{"code": "app", "cost": "1.00"}, {"code": "app", "cost": "2.00"}]),
        ("channels", [{"code": "App Store", "cost": "1.00"}]),
        ("channels", [{"code": "app", "cost": "-1.00"}]),
        ("targets", {"gmv": "0"}),
        ("targets", {"orders": 0}),
        ("baseline_campaign_id", 999_999),
        ("name", "x" * 201),
    ],
)
async def test_bad_campaigns_are_refused_with_a_problem(
    client: httpx.AsyncClient, auth: Auth, field: str, value: Any
) -> None:
    from tests.support.campaigns import campaign_spec

    response = await client.post(
        "/api/v1/admin/campaigns", json=campaign_spec(**{field: value}), headers=auth.admin()
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert (await client.get("/api/v1/admin/campaigns", headers=auth.admin())).json() == []


async def test_phases_are_in_order_and_do_not_overlap(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    from tests.support.campaigns import campaign_spec

    spec = campaign_spec()
    phases = spec["phases"]
    overlapping = {**phases, "warm_up": {**phases["warm_up"], "ends_at": phases["peak"]["ends_at"]}}
    for bad in (
        overlapping,
        {**phases, "return": phases["warm_up"]},
        {"peak": {"starts_at": phases["peak"]["ends_at"], "ends_at": phases["peak"]["starts_at"]}},
        {"warm_up": phases["warm_up"]},
    ):
        response = await client.post(
            "/api/v1/admin/campaigns", json={**spec, "phases": bad}, headers=auth.admin()
        )
        assert response.status_code == 422, (bad, response.text)


async def test_an_event_lies_inside_the_peak_of_a_draft_campaign(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    from datetime import timedelta

    from tests.support.factories import event_spec

    campaign = await create_campaign(client, auth)
    outside = await client.post(
        "/api/v1/admin/events",
        json=event_spec(campaign_id=campaign["id"], lasts=timedelta(hours=3)),
        headers=auth.admin(),
    )
    assert outside.status_code == 422, outside.text
    unknown = await client.post(
        "/api/v1/admin/events", json=event_spec(campaign_id=999_999), headers=auth.admin()
    )
    assert unknown.status_code == 422
    await approve_campaign(client, auth, campaign["id"])
    late = await client.post(
        "/api/v1/admin/events", json=event_spec(campaign_id=campaign["id"]), headers=auth.admin()
    )
    assert late.status_code == 409, late.text
    assert late.json()["code"] == "invalid_state"
