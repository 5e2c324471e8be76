"""Every rules change is a new version; each order records its campaign, the rules version
in force when it was accepted, and its channel ("other" for a code the campaign does not
list)."""

from datetime import timedelta

import httpx
from sqlalchemy import select

from app.container import Container
from app.orders.models import Order
from tests.support.campaigns import OPS, approve_campaign, create_campaign
from tests.support.factories import Auth, create_event, item_spec
from tests.support.lifecycle import store_orders


async def buy(
    client: httpx.AsyncClient, auth: Auth, item_id: int, user: str, channel: str | None = None
) -> str:
    headers = auth.headers(user)
    if channel is not None:
        headers["X-Channel"] = channel
    response = await client.post(
        f"/api/v1/items/{item_id}/purchase", json={"quantity": 1}, headers=headers
    )
    assert response.status_code == 202, response.text
    order_id: str = response.json()["order_id"]
    return order_id


async def test_orders_before_and_after_a_rules_change_carry_their_versions(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    campaign = await create_campaign(client, auth)
    cid = campaign["id"]
    event = await create_event(
        client, auth, campaign_id=cid, items=[item_spec(stock=100, per_user_limit=5)]
    )
    await approve_campaign(client, auth, cid)
    item_id = event.items[0].id
    before = await buy(client, auth, item_id, "u1")

    changed = await client.patch(
        f"/api/v1/admin/campaigns/{cid}",
        json={"rules": "Each account at most 5 phones."},
        headers=auth.admin(),
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["rules_version"] == 2
    after = await buy(client, auth, item_id, "u2")
    # The same rules again is no new version.
    same = await client.patch(
        f"/api/v1/admin/campaigns/{cid}",
        json={"rules": "Each account at most 5 phones."},
        headers=auth.admin(),
    )
    assert same.json()["rules_version"] == 2

    await store_orders(services)
    versions = {}
    for order_id in (before, after):
        read = await client.get(f"/api/v1/orders/{order_id}", headers=auth.admin())
        assert read.status_code == 200, read.text
        assert read.json()["campaign_id"] == cid
        versions[order_id] = read.json()["rules_version"]
    assert versions == {before: 1, after: 2}

    page = (await client.get(f"/api/v1/campaigns/{cid}")).json()
    assert page["rules_version"] == 2
    assert page["rules"] == "Each account at most 5 phones."
    assert page["current_phase"] == "peak"
    first = await client.get(f"/api/v1/campaigns/{cid}/rules", params={"version": 1})
    assert first.status_code == 200
    assert first.json()["rules"] == campaign["rules"]
    assert (
        await client.get(f"/api/v1/campaigns/{cid}/rules", params={"version": 3})
    ).status_code == 404
    assert (
        await client.get(f"/api/v1/campaigns/{cid}/rules", params={"version": 0})
    ).status_code == 422


async def test_a_campaign_is_public_only_once_approved(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    campaign = await create_campaign(client, auth)
    cid = campaign["id"]
    assert (await client.get(f"/api/v1/campaigns/{cid}")).status_code == 404
    assert (await client.get(f"/api/v1/campaigns/{cid}/rules")).status_code == 404
    await approve_campaign(client, auth, cid)
    page = await client.get(f"/api/v1/campaigns/{cid}")
    assert page.status_code == 200
    assert set(page.json()) == {
        "id", "name", "timezone", "phases", "current_phase", "rules", "rules_version"
    }  # fmt: skip
    assert set(page.json()["phases"]) == {"warm_up", "peak", "return"}


async def test_after_approval_only_rules_targets_and_channels_change(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    campaign = await create_campaign(client, auth)
    cid = campaign["id"]
    path = f"/api/v1/admin/campaigns/{cid}"
    renamed = await client.patch(path, json={"name": "Double 12 (v2)"}, headers=auth.admin())
    assert renamed.status_code == 200
    await client.post(f"{path}/submit", headers=auth.admin())
    pending = await client.patch(path, json={"rules": "changed"}, headers=auth.admin())
    assert pending.status_code == 409
    user_id, groups = OPS
    await client.post(f"{path}/approve", headers=auth.operator(user_id, *groups))
    await client.post(f"{path}/approve", headers=auth.operator("fin", "finance"))
    assert (await client.patch(path, json={"name": "x"}, headers=auth.admin())).status_code == 409
    assert (
        await client.patch(path, json={"phases": campaign["phases"]}, headers=auth.admin())
    ).status_code == 422
    changed = await client.patch(
        path,
        json={"targets": {"gmv": "5000000.00"}, "channels": [{"code": "douyin", "cost": "9.50"}]},
        headers=auth.admin(),
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["targets"]["gmv"] == "5000000.00"
    assert changed.json()["targets"]["orders"] is None
    assert changed.json()["channels"] == [{"code": "douyin", "cost": "9.50"}]
    assert changed.json()["rules_version"] == 1


async def test_orders_record_their_channel_and_other_for_unknown_codes(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    campaign = await create_campaign(client, auth)
    event = await create_event(
        client, auth, campaign_id=campaign["id"], items=[item_spec(stock=50, per_user_limit=1)]
    )
    await approve_campaign(client, auth, campaign["id"])
    item_id = event.items[0].id
    sent = {
        "u-app": "app",
        "u-wechat": "wechat",
        "u-unknown": "tiktok",
        "u-malformed": "App Store; DROP TABLE",
        "u-long": "a" * 300,
        "u-none": None,
    }
    orders = {
        user: await buy(client, auth, item_id, user, channel) for user, channel in sent.items()
    }
    await store_orders(services)
    async with services.sessionmaker() as session:
        rows = await session.execute(
            select(Order.id, Order.channel).where(Order.id.in_(orders.values()))
        )
        recorded: dict[str, str | None] = dict(rows.all())
    assert {user: recorded[order_id] for user, order_id in orders.items()} == {
        "u-app": "app",
        "u-wechat": "wechat",
        "u-unknown": "other",
        "u-malformed": "other",
        "u-long": "other",
        "u-none": None,
    }
    read = await client.get(f"/api/v1/orders/{orders['u-app']}", headers=auth.headers("u-app"))
    assert read.json()["channel"] == "app"


async def test_orders_of_an_event_without_a_campaign_keep_the_code(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    event = await create_event(client, auth, lasts=timedelta(hours=1))
    order_id = await buy(client, auth, event.items[0].id, "u1", "newsletter")
    await store_orders(services)
    read = (await client.get(f"/api/v1/orders/{order_id}", headers=auth.headers("u1"))).json()
    assert (read["campaign_id"], read["rules_version"], read["channel"]) == (
        None,
        None,
        "newsletter",
    )
