"""A crowd checking out at once: exactly `daily_limit` orders take the promotion, each
user at most `per_user_daily_limit`, and Redis agrees with Postgres."""

import asyncio
import time
from collections import Counter

import httpx

from app.container import Container
from tests.support.coupons import create_sku
from tests.support.factories import Auth
from tests.support.promotions import (
    checkout,
    create_promotion,
    promoted_orders,
    taken,
    utc_today,
)

CROWD = 300
USERS = 200  # a hundred of them check out twice
SKUS = 30  # spread over SKUs, so checkouts do not queue on one SKU's row lock
DAILY_LIMIT = 20


async def test_a_crowd_of_300_gets_exactly_the_daily_limit(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    for n in range(SKUS):
        await create_sku(client, auth, f"SKU-{n}", price="250.00", on_hand=CROWD)
    promotion = await create_promotion(client, auth, daily_limit=DAILY_LIMIT)
    started = time.monotonic()

    answers = await asyncio.gather(
        *(checkout(client, auth, {f"SKU-{n % SKUS}": 1}, user=f"buyer-{n % USERS}")
          for n in range(CROWD))
    )  # fmt: skip

    assert [a.status_code for a in answers] == [201] * CROWD, answers[0].text
    promoted = [a.json() for a in answers if a.json()["promotion"] is not None]
    assert len(promoted) == DAILY_LIMIT
    assert all(o["discount"] == "30.00" for o in promoted)
    by_user = Counter(o["user_id"] for o in promoted)
    assert max(by_user.values()) == 1
    stored = await promoted_orders(app_services, promotion.id)
    assert sorted(o for o, _u, _d in stored) == sorted(o["id"] for o in promoted)
    assert await taken(app_services, promotion.id, utc_today()) == DAILY_LIMIT
    assert time.monotonic() - started < 20
