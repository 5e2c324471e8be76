"""Coupons of a campaign: claim window from a phase, usable from `valid_from`, nothing
handed out before the approval."""

from datetime import UTC, datetime, timedelta

import httpx

from tests.support.campaigns import approve_campaign, create_campaign
from tests.support.coupons import claim, create_coupon, create_sku
from tests.support.factories import Auth
from tests.support.waiting import eventually


async def test_a_phase_coupon_takes_the_phase_window(client: httpx.AsyncClient, auth: Auth) -> None:
    campaign = await create_campaign(client, auth)
    coupon = await create_coupon(
        client,
        auth,
        campaign_id=campaign["id"],
        phase="return",
        claim_starts_at=None,
        claim_ends_at=None,
    )
    phase = campaign["phases"]["return"]
    assert coupon.claim_starts_at == datetime.fromisoformat(phase["starts_at"])
    assert coupon.claim_ends_at == datetime.fromisoformat(phase["ends_at"])
    assert (coupon.campaign_id, coupon.phase) == (campaign["id"], "return")


async def test_bad_campaign_coupons_are_refused(client: httpx.AsyncClient, auth: Auth) -> None:
    from tests.support.coupons import coupon_spec

    campaign = await create_campaign(client, auth, phases={"peak": {
        "starts_at": datetime.now(UTC).isoformat(),
        "ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    }})  # fmt: skip
    cases = [
        # A phase without a campaign, a phase the campaign lacks, both windows, neither.
        coupon_spec(phase="peak", claim_starts_at=None, claim_ends_at=None),
        coupon_spec(campaign_id=campaign["id"], phase="warm_up", claim_starts_at=None,
                    claim_ends_at=None),
        coupon_spec(campaign_id=campaign["id"], phase="peak"),
        coupon_spec(campaign_id=campaign["id"], claim_starts_at=None, claim_ends_at=None),
        coupon_spec(campaign_id=999_999),
        coupon_spec(campaign_id=campaign["id"], phase="autumn", claim_starts_at=None,
                    claim_ends_at=None),
    ]  # fmt: skip
    for spec in cases:
        response = await client.post("/api/v1/admin/coupons", json=spec, headers=auth.admin())
        assert response.status_code == 422, (spec, response.text)
        assert response.json()["code"] == "validation_error"


async def test_a_coupon_is_usable_from_valid_from(client: httpx.AsyncClient, auth: Auth) -> None:
    campaign = await create_campaign(client, auth)
    coupon = await create_coupon(
        client,
        auth,
        campaign_id=campaign["id"],
        valid_from=campaign["phases"]["return"]["starts_at"],
    )
    await approve_campaign(client, auth, campaign["id"])
    await create_sku(client, auth, "RICE", price="150.00")
    claimed = await claim(client, auth, coupon.id)
    assert claimed.status_code == 201, claimed.text
    quote = await client.post(
        "/api/v1/orders/quote",
        json={"items": [{"sku": "RICE", "quantity": 2}], "coupon": claimed.json()["id"]},
        headers=auth.headers(),
    )
    assert quote.status_code == 422, quote.text
    assert quote.json()["code"] == "coupon_not_applicable"
    assert quote.json()["reason"] == "not_yet_valid"


async def test_a_held_coupon_is_not_granted(client: httpx.AsyncClient, auth: Auth) -> None:
    campaign = await create_campaign(client, auth)
    coupon = await create_coupon(client, auth, campaign_id=campaign["id"])
    grant = await client.post(
        f"/api/v1/admin/coupons/{coupon.id}/grants",
        json={"user_ids": ["u1"]},
        headers=auth.admin(),
    )
    assert grant.status_code == 409, grant.text
    assert grant.json()["code"] == "invalid_state"
    await approve_campaign(client, auth, campaign["id"])
    grant = await client.post(
        f"/api/v1/admin/coupons/{coupon.id}/grants",
        json={"user_ids": ["u1"]},
        headers=auth.admin(),
    )
    assert grant.status_code == 202, grant.text
    job_path = f"/api/v1/admin/jobs/{grant.json()['job_id']}"

    async def done() -> bool:
        status = (await client.get(job_path, headers=auth.admin())).json()["status"]
        return bool(status == "done")

    # The grant runs after the answer: the test ends once it has (and its connection closed).
    await eventually(done)
