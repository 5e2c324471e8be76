"""Copying a campaign: a new draft with its events, coupons and promotions, every time
shifted."""

from datetime import datetime, timedelta

import httpx

from app.container import Container
from app.coupons.models import Coupon
from app.flows.sale_terms import release_approved_coupons
from app.store.coupon_keys import CouponKeys
from tests.support.campaigns import approve_campaign, create_campaign
from tests.support.coupons import coupon_spec
from tests.support.factories import Auth, create_event, item_spec


def moved(value: str, days: int) -> datetime:
    return datetime.fromisoformat(value) + timedelta(days=days)


async def test_copy_shifts_every_time_and_is_a_draft(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    campaign = await create_campaign(client, auth)
    cid = campaign["id"]
    event = await create_event(
        client,
        auth,
        campaign_id=cid,
        ship_within_days=2,
        items=[item_spec(sku="PHONE-9", stock=30)],
    )
    # The SKU's stock for the copy's allocation too.
    received = await client.post(
        "/api/v1/admin/skus/PHONE-9/adjustments", json={"delta": 30}, headers=auth.admin()
    )
    assert received.status_code == 200, received.text
    warm_up = await client.post(
        "/api/v1/admin/coupons",
        json=coupon_spec(
            campaign_id=cid,
            phase="return",
            claim_starts_at=None,
            claim_ends_at=None,
            valid_from=campaign["phases"]["return"]["starts_at"],
        ),
        headers=auth.admin(),
    )
    assert warm_up.status_code == 201, warm_up.text
    own_window = await client.post(
        "/api/v1/admin/coupons", json=coupon_spec(campaign_id=cid), headers=auth.admin()
    )
    assert own_window.status_code == 201, own_window.text
    await approve_campaign(client, auth, cid)

    response = await client.post(
        f"/api/v1/admin/campaigns/{cid}/copy", json={"shift_days": 7}, headers=auth.admin()
    )
    assert response.status_code == 201, response.text
    copied = response.json()
    new = copied["campaign"]
    assert new["status"] == "draft"
    assert new["baseline_campaign_id"] == cid
    assert new["rules_version"] == 1
    assert new["channels"] == campaign["channels"]
    for phase in ("warm_up", "peak", "return"):
        for end in ("starts_at", "ends_at"):
            assert datetime.fromisoformat(new["phases"][phase][end]) == moved(
                campaign["phases"][phase][end], 7
            )

    new_event_id = copied["events"][str(event.id)]
    new_event = (await client.get("/api/v1/admin/events", headers=auth.admin())).json()
    [copy_of_event] = [e for e in new_event if e["id"] == new_event_id]
    assert copy_of_event["campaign_id"] == new["id"]
    assert datetime.fromisoformat(copy_of_event["starts_at"]) == event.starts_at + timedelta(days=7)
    assert datetime.fromisoformat(copy_of_event["ends_at"]) == event.ends_at + timedelta(days=7)
    assert [(i["sku"], i["stock"]) for i in copy_of_event["items"]] == [("PHONE-9", 30)]
    # The same promise; a week later ends on the same weekday, so ships a week later.
    assert copy_of_event["ship_within_days"] == 2
    assert event.ship_by is not None
    assert datetime.fromisoformat(copy_of_event["ship_by"]) == event.ship_by + timedelta(days=7)
    # A draft's event is no shopper's.
    assert (await client.get(f"/api/v1/events/{new_event_id}")).status_code == 404

    async with services.sessionmaker() as session:
        for source in (warm_up.json(), own_window.json()):
            copy_id = copied["coupons"][str(source["id"])]
            # Held: its campaign is a draft.
            assert (await client.get(f"/api/v1/coupons/{copy_id}")).status_code == 404
            coupon = await session.get(Coupon, copy_id)
            assert coupon is not None
            assert coupon.campaign_id == new["id"]
            assert coupon.phase == source["phase"]
            assert coupon.claim_starts_at == moved(source["claim_starts_at"], 7)
            assert coupon.claim_ends_at == moved(source["claim_ends_at"], 7)
            if source["valid_from"] is not None:
                assert coupon.valid_from == moved(source["valid_from"], 7)
    assert copied["promotions"] == {}


async def test_a_shift_that_leaves_a_window_in_the_past_is_refused(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    campaign = await create_campaign(client, auth)
    await create_event(client, auth, campaign_id=campaign["id"])
    response = await client.post(
        f"/api/v1/admin/campaigns/{campaign['id']}/copy",
        json={"shift_days": -30},
        headers=auth.admin(),
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    listed = (await client.get("/api/v1/admin/campaigns", headers=auth.admin())).json()
    assert [c["id"] for c in listed] == [campaign["id"]]
    missing = await client.post(
        "/api/v1/admin/campaigns/999999/copy", json={"shift_days": 1}, headers=auth.admin()
    )
    assert missing.status_code == 404


async def test_coupons_an_approval_left_held_are_released_by_the_worker_check(
    client: httpx.AsyncClient, auth: Auth, services: Container, app_services: Container
) -> None:
    campaign = await create_campaign(client, auth)
    created = await client.post(
        "/api/v1/admin/coupons", json=coupon_spec(campaign_id=campaign["id"]), headers=auth.admin()
    )
    coupon_id = created.json()["id"]
    await approve_campaign(client, auth, campaign["id"])
    keys = CouponKeys(services.settings.redis_key_prefix, coupon_id)
    # As if the after-commit release had failed.
    await services.redis.hset(keys.coupon, "held", "1")
    claim = await client.post(f"/api/v1/coupons/{coupon_id}/claim", headers=auth.headers("u1"))
    assert claim.status_code == 404

    assert await release_approved_coupons(app_services) == [coupon_id]

    claim = await client.post(f"/api/v1/coupons/{coupon_id}/claim", headers=auth.headers("u1"))
    assert claim.status_code == 201, claim.text
    assert await release_approved_coupons(app_services) == []


async def test_a_copied_event_keeps_its_access_shifted(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    from tests.support.factories import event_spec

    campaign = await create_campaign(client, auth)
    spec = event_spec(campaign_id=campaign["id"])
    opens_at = datetime.fromisoformat(spec["starts_at"]) - timedelta(minutes=10)
    spec["access"] = {
        "mode": "queue",
        "opens_at": opens_at.isoformat(),
        "admit_per_second": 50,
        "pass_seconds": 120,
    }
    created = await client.post("/api/v1/admin/events", json=spec, headers=auth.admin())
    assert created.status_code == 201, created.text
    received = await client.post(
        "/api/v1/admin/skus/PHONE-1/adjustments", json={"delta": 100}, headers=auth.admin()
    )
    assert received.status_code == 200, received.text
    copied = await client.post(
        f"/api/v1/admin/campaigns/{campaign['id']}/copy",
        json={"shift_days": 3},
        headers=auth.admin(),
    )
    assert copied.status_code == 201, copied.text
    copy_id = copied.json()["events"][str(created.json()["id"])]
    events = (await client.get("/api/v1/admin/events", headers=auth.admin())).json()
    [copy] = [e for e in events if e["id"] == copy_id]
    assert copy["access"]["mode"] == "queue"
    assert datetime.fromisoformat(copy["access"]["opens_at"]) == opens_at + timedelta(days=3)
    assert copy["access"]["admit_per_second"] == 50
