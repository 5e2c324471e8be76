"""A crowd on a campaign's slot while its rules change: exactly the stock sold, nobody over
the limit, every order stored once with its campaign, channel and the version in force
when Redis accepted it (versions never go back in acceptance order)."""

import asyncio
import random
from collections import Counter

import httpx
from sqlalchemy import func, select

from app.container import Container
from app.inventory.models import StockMovement
from app.orders.models import Order
from app.store.keys import ItemKeys
from tests.support.campaigns import approve_campaign, create_campaign
from tests.support.factories import Auth, create_event, item_spec
from tests.support.lifecycle import store_orders

BUYERS = 400
STOCK = 300
CHANNELS = ["app", "wechat", "tiktok", None]


async def test_a_crowd_on_a_campaign_slot_while_its_rules_change(
    client: httpx.AsyncClient, auth: Auth, services: Container
) -> None:
    campaign = await create_campaign(client, auth)
    cid = campaign["id"]
    event = await create_event(
        client, auth, campaign_id=cid, items=[item_spec(stock=STOCK, per_user_limit=1)]
    )
    await approve_campaign(client, auth, cid)
    item_id = event.items[0].id
    rng = random.Random(19)
    sent = {f"u{n}": rng.choice(CHANNELS) for n in range(BUYERS)}

    async def buy(user: str) -> httpx.Response:
        headers = auth.headers(user)
        if (channel := sent[user]) is not None:
            headers["X-Channel"] = channel
        return await client.post(
            f"/api/v1/items/{item_id}/purchase", json={"quantity": 1}, headers=headers
        )

    async def wave(users: list[str]) -> dict[str, httpx.Response]:
        return dict(zip(users, await asyncio.gather(*map(buy, users)), strict=True))

    users = list(sent)
    first, second, third = users[:100], users[100:250], users[250:]
    # Before the change, during it (racing 150 buyers), after its answer.
    answers = await wave(first)
    change = client.patch(
        f"/api/v1/admin/campaigns/{cid}", json={"rules": "v2"}, headers=auth.admin()
    )
    changed, during = await asyncio.gather(change, wave(second))
    assert changed.status_code == 200, changed.text
    answers |= during | await wave(third)

    accepted = {u: r.json()["order_id"] for u, r in answers.items() if r.status_code == 202}
    refused = Counter(r.json()["code"] for r in answers.values() if r.status_code != 202)
    assert len(accepted) == STOCK
    assert refused == {"sold_out": BUYERS - STOCK}

    keys = ItemKeys(services.settings.redis_key_prefix, item_id)
    in_stream = [
        {str(k): str(v) for k, v in (fields or {}).items()}
        for _id, fields in await services.redis.xrange(keys.orders) or []
    ]
    versions = [int(fields["rules_version"]) for fields in in_stream]
    assert versions == sorted(versions)  # the change is in force from one acceptance on
    version_of = {fields["order_id"]: int(fields["rules_version"]) for fields in in_stream}
    assert {version_of[accepted[u]] for u in first} == {1}
    assert {version_of[accepted[u]] for u in third if u in accepted} == {2}

    assert await store_orders(services) == STOCK
    async with services.sessionmaker() as session:
        rows = (
            await session.execute(
                select(
                    Order.id, Order.user_id, Order.campaign_id, Order.channel, Order.rules_version
                ).where(Order.item_id == item_id)
            )
        ).all()
        sold = await session.scalar(
            select(func.sum(StockMovement.item_stock_delta)).where(
                StockMovement.item_id == item_id, StockMovement.reason == "sold"
            )
        )
    assert sold == -STOCK
    assert sorted(r.id for r in rows) == sorted(accepted.values())
    assert Counter(r.user_id for r in rows).most_common(1)[0][1] == 1
    expected = {"app": "app", "wechat": "wechat", "tiktok": "other", None: None}
    for row in rows:
        assert row.campaign_id == cid
        assert row.channel == expected[sent[row.user_id]]
        assert row.rules_version in (1, 2)
    assert {r.id: r.rules_version for r in rows} == version_of
