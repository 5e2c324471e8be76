"""Claiming coupons through the API: every refusal, idempotency, the caller's list, and a
claim crowd through real HTTP."""

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from app.config import Rate
from app.container import Container
from app.store.coupon_keys import CouponKeys
from tests.support.coupons import claim, create_coupon, create_sku
from tests.support.factories import Auth, assert_problem
from tests.support.lifecycle import rebuild_and_resume, store_orders, wait_past


async def remaining(client: httpx.AsyncClient, coupon_id: int) -> int:
    value: int = (await client.get(f"/api/v1/coupons/{coupon_id}")).json()["remaining"]
    return value


async def test_claim_and_list_mine(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    coupon = await create_coupon(client, auth, total_quantity=3, per_user_limit=2)
    first = await claim(client, auth, coupon.id)
    assert first.status_code == 201, first.text
    got = first.json()
    assert (got["coupon_id"], got["status"]) == (coupon.id, "available")
    valid_until = datetime.fromisoformat(got["valid_until"])
    assert timedelta(days=6, hours=23) < valid_until - datetime.now(UTC) <= timedelta(days=7)
    assert await remaining(client, coupon.id) == 2
    second = (await claim(client, auth, coupon.id)).json()
    assert_problem(await claim(client, auth, coupon.id), 409, "limit_exceeded")
    assert await store_orders(app_services) == 2
    mine = (await client.get("/api/v1/me/coupons", headers=auth.headers())).json()
    assert [c["id"] for c in mine] == [second["id"], got["id"]]
    assert {c["status"] for c in mine} == {"available"}
    assert (await client.get("/api/v1/me/coupons", headers=auth.headers("other"))).json() == []
    assert (await claim(client, auth, coupon.id, user_id="u2")).status_code == 201
    assert_problem(await claim(client, auth, coupon.id, user_id="u3"), 409, "coupon_exhausted")
    assert await remaining(client, coupon.id) == 0


async def test_fixed_validity(client: httpx.AsyncClient, auth: Auth) -> None:
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    coupon = await create_coupon(
        client, auth, valid_days_after_claim=None, valid_until=until.isoformat()
    )
    got = (await claim(client, auth, coupon.id)).json()
    assert datetime.fromisoformat(got["valid_until"]) == until


async def test_idempotent_claim(client: httpx.AsyncClient, auth: Auth) -> None:
    coupon = await create_coupon(client, auth, total_quantity=10, per_user_limit=3)
    answers = await asyncio.gather(
        *(claim(client, auth, coupon.id, idempotency_key="k1") for _ in range(5))
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert len({a.json()["valid_until"] for a in answers}) == 1
    assert await remaining(client, coupon.id) == 9


async def test_claim_window(client: httpx.AsyncClient, auth: Auth) -> None:
    now = datetime.now(UTC)
    later = await create_coupon(
        client,
        auth,
        claim_starts_at=(now + timedelta(hours=1)).isoformat(),
        claim_ends_at=(now + timedelta(hours=2)).isoformat(),
    )
    assert_problem(await claim(client, auth, later.id), 409, "not_started")
    ends = now + timedelta(seconds=1)
    closing = await create_coupon(client, auth, claim_ends_at=ends.isoformat())
    await wait_past(ends)
    assert_problem(await claim(client, auth, closing.id), 409, "ended")
    # An ended template is no longer listed.
    assert closing.id not in [c["id"] for c in (await client.get("/api/v1/coupons")).json()]


async def test_members_only(client: httpx.AsyncClient, auth: Auth) -> None:
    coupon = await create_coupon(client, auth, audience="members")
    assert_problem(await claim(client, auth, coupon.id), 403, "audience_mismatch")
    assert (await claim(client, auth, coupon.id, member=True)).status_code == 201


async def test_new_users_only(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="10.00")
    order = await client.post(
        "/api/v1/orders", json={"items": [{"sku": "RICE"}]}, headers=auth.headers("old")
    )
    assert order.status_code == 201
    coupon = await create_coupon(client, auth, audience="new_users")
    # An unpaid order does not make a user old.
    assert (await claim(client, auth, coupon.id, user_id="old")).status_code == 201
    paid = await client.post(
        f"/api/v1/orders/{order.json()['id']}/pay", headers=auth.headers("old")
    )
    assert paid.status_code == 200
    other = await create_coupon(client, auth, audience="new_users")
    assert_problem(await claim(client, auth, other.id, user_id="old"), 403, "audience_mismatch")
    assert (await claim(client, auth, other.id, user_id="new")).status_code == 201


async def test_unknown_coupon(client: httpx.AsyncClient, auth: Auth) -> None:
    assert_problem(await claim(client, auth, 424242), 404, "not_found")
    response = await client.post("/api/v1/coupons/424242/claim")
    assert_problem(response, 401, "unauthorized")
    response = await client.post(
        "/api/v1/coupons/1/claim", headers={**auth.headers(), "Idempotency-Key": "a b"}
    )
    assert_problem(response, 422, "validation_error")


async def test_a_lost_redis_state_is_rebuilt_from_postgres(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """Warm-up counts stored claims and claims still in the stream."""
    from app.coupons import service

    coupon = await create_coupon(client, auth, total_quantity=5, per_user_limit=2)
    for user in ("a", "b"):
        assert (await claim(client, auth, coupon.id, user_id=user)).status_code == 201
    await store_orders(app_services)
    assert (await claim(client, auth, coupon.id, user_id="a")).status_code == 201  # in stream
    keys = CouponKeys(app_services.settings.redis_key_prefix, coupon.id)
    await app_services.redis.delete(keys.coupon, keys.claimers)
    async with app_services.sessionmaker() as session:
        assert await service.warm_up(session=session, services=app_services) == 0
    # Lost, not new: frozen, then rebuilt by the hot-store check and resumed by an operator.
    assert_problem(await claim(client, auth, coupon.id, user_id="c"), 503, "recovering")
    assert len(await rebuild_and_resume(app_services)) == 1
    assert await remaining(client, coupon.id) == 2
    assert_problem(await claim(client, auth, coupon.id, user_id="a"), 409, "limit_exceeded")


CLAIMANTS = 2000
COUPONS = 500
CLIENTS = 20
CONNECTIONS_PER_CLIENT = 25


@pytest.mark.slow
async def test_a_claim_crowd_takes_exactly_the_coupons(
    client: httpx.AsyncClient, auth: Auth, http_base_url: str, app_services: Container
) -> None:
    """2,000 simultaneous claimants (and their retries) for 500 coupons, limit 1."""
    coupon = await create_coupon(client, auth, total_quantity=COUPONS, per_user_limit=1)
    rng = random.Random(10)
    attempts = [(f"u{n}", f"k{n}") for n in range(CLAIMANTS)]
    # Retries: a fifth of the claimants send their request twice (same Idempotency-Key),
    # and some again without one.
    attempts += [attempts[rng.randrange(CLAIMANTS)] for _ in range(CLAIMANTS // 5)]
    attempts += [(attempts[rng.randrange(CLAIMANTS)][0], "") for _ in range(CLAIMANTS // 10)]
    rng.shuffle(attempts)
    headers = {user: auth.headers(user) for user, _ in attempts}
    limits = httpx.Limits(max_connections=CONNECTIONS_PER_CLIENT)
    crowd = [
        httpx.AsyncClient(base_url=http_base_url, limits=limits, timeout=120)
        for _ in range(CLIENTS)
    ]
    start = asyncio.Event()

    async def attempt(n: int, user: str, key: str) -> tuple[str, httpx.Response]:
        await start.wait()
        extra = {"Idempotency-Key": key} if key else {}
        response = await crowd[n % CLIENTS].post(
            f"/api/v1/coupons/{coupon.id}/claim", headers={**headers[user], **extra}
        )
        return user, response

    tasks = [asyncio.create_task(attempt(n, u, k)) for n, (u, k) in enumerate(attempts)]
    start.set()
    results = await asyncio.gather(*tasks)
    for c in crowd:
        await c.aclose()

    codes = Counter(r.status_code for _, r in results)
    assert set(codes) <= {201, 409}, codes
    won = {(user, r.json()["id"]) for user, r in results if r.status_code == 201}
    assert len({claim_id for _, claim_id in won}) == COUPONS
    assert len({user for user, _ in won}) == COUPONS  # nobody holds two
    refused = Counter(r.json()["code"] for _, r in results if r.status_code == 409)
    assert set(refused) <= {"coupon_exhausted", "limit_exceeded"}
    assert await remaining(client, coupon.id) == 0

    assert await store_orders(app_services) == COUPONS
    assert await store_orders(app_services) == 0
    async with app_services.sessionmaker() as session:
        stored = (
            await session.execute(
                text("SELECT user_id, id FROM user_coupons WHERE coupon_id = :c"),
                {"c": coupon.id},
            )
        ).all()
    assert {(u, i) for u, i in stored} == won  # every claim stored, exactly once
    keys = CouponKeys(app_services.settings.redis_key_prefix, coupon.id)
    claimers = await app_services.redis.hgetall(keys.claimers)
    assert sum(int(v) for v in claimers.values()) == COUPONS
    assert await app_services.redis.hlen(keys.queued) == 0


async def test_metrics_count_claims_and_redemptions(client: httpx.AsyncClient, auth: Auth) -> None:
    await create_sku(client, auth, "RICE", price="10.00")
    coupon = await create_coupon(client, auth, per_user_limit=1)
    claim_id = (await claim(client, auth, coupon.id)).json()["id"]
    await claim(client, auth, coupon.id)
    await client.post(
        "/api/v1/orders/quote",
        json={"items": [{"sku": "RICE"}], "coupon": claim_id},
        headers=auth.headers(),
    )
    body = (await client.get("/metrics")).text
    assert 'seckill_coupon_claims_total{outcome="claimed"}' in body
    assert 'seckill_coupon_claims_total{outcome="limit_exceeded"}' in body
    assert 'seckill_coupon_redemptions_total{outcome="below_threshold"}' in body


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_per_user": Rate(2, 60)}])
async def test_claims_and_checkouts_are_rate_limited(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await create_sku(client, auth, "RICE", price="10.00", on_hand=10)
    coupon = await create_coupon(client, auth, per_user_limit=5)
    assert (await claim(client, auth, coupon.id)).status_code == 201
    assert (await claim(client, auth, coupon.id)).status_code == 201
    refused = await claim(client, auth, coupon.id)
    assert_problem(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1
    assert await remaining(client, coupon.id) == 98  # nothing taken
    body = {"items": [{"sku": "RICE"}]}
    for _ in range(2):
        placed = await client.post("/api/v1/orders", json=body, headers=auth.headers())
        assert placed.status_code == 201, placed.text
    refused = await client.post("/api/v1/orders", json=body, headers=auth.headers())
    assert_problem(refused, 429, "rate_limited")
    async with app_services.sessionmaker() as session:
        assert await session.scalar(text("SELECT on_hand FROM skus WHERE sku = 'RICE'")) == 8
