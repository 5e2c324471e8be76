"""The coupon audit: clean books pass; each kind of damage is reported."""

import asyncio
import sys

import httpx
from sqlalchemy import text

from app.config import Settings
from app.container import Container
from app.flows.coupon_audit import audit_coupons, format_coupon_report
from app.store.coupon_keys import CouponKeys
from tests.support.coupons import claim, create_coupon, create_sku
from tests.support.factories import Auth
from tests.support.lifecycle import store_orders
from tests.support.processes import settings_environment


async def _books(client: httpx.AsyncClient, auth: Auth, services: Container) -> dict[str, str]:
    """Claims (stored and queued), an order with a coupon, a cancelled one given back."""
    await create_sku(client, auth, "RICE", price="400.00")
    coupon = await create_coupon(client, auth, total_quantity=10, per_user_limit=2)
    ids = {}
    for name, user in (("kept", "u1"), ("cancelled", "u1"), ("other", "u2")):
        response = await claim(client, auth, coupon.id, user_id=user)
        ids[name] = response.json()["id"]
    await store_orders(services)
    for name in ("kept", "cancelled"):
        order = await client.post(
            "/api/v1/orders",
            json={"items": [{"sku": "RICE"}], "coupon": ids[name]},
            headers=auth.headers("u1"),
        )
        assert order.status_code == 201, order.text
        ids[f"{name}_order"] = order.json()["id"]
    cancelled = await client.post(
        f"/api/v1/orders/{ids['cancelled_order']}/cancel", headers=auth.headers("u1")
    )
    assert cancelled.status_code == 200
    assert (await claim(client, auth, coupon.id, user_id="u3")).status_code == 201  # queued
    ids["coupon"] = str(coupon.id)
    return ids


async def test_clean_books_pass(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    await _books(client, auth, app_services)
    report = await audit_coupons(services=app_services)
    assert report.ok, format_coupon_report(report)
    (only,) = report.coupons
    assert (only.total, only.remaining, only.claimed, only.in_stream) == (10, 6, 3, 1)


async def test_damage_is_reported(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    ids = await _books(client, auth, app_services)
    keys = CouponKeys(app_services.settings.redis_key_prefix, int(ids["coupon"]))
    await app_services.redis.hincrby(keys.coupon, "remaining", 1)
    await app_services.redis.hset(keys.claimers, "u9", 1)
    async with app_services.sessionmaker() as session, session.begin():
        # A coupon left `used` on an order whose return is done; a live order whose coupon
        # is not used on it; a user over the limit.
        await session.execute(
            text("UPDATE user_coupons SET status = 'used', order_id = :o WHERE id = :c"),
            {"o": ids["cancelled_order"], "c": ids["cancelled"]},
        )
        await session.execute(
            text("UPDATE user_coupons SET status = 'available', order_id = NULL WHERE id = :c"),
            {"c": ids["kept"]},
        )
        await session.execute(
            text(
                "INSERT INTO user_coupons (id, coupon_id, user_id, status, source, claimed_at, "
                "valid_until) VALUES ('X-1', :c, 'u1', 'available', 'claim', now(), now())"
            ),
            {"c": int(ids["coupon"])},
        )
    report = await audit_coupons(services=app_services)
    text_report = format_coupon_report(report)
    assert not report.ok
    assert "Redis has 7 left, but 5 are claimed of 10" in text_report
    assert "over the per-user limit of 2: u1 holds 3" in text_report
    assert "claimer counts disagree" in text_report
    assert "still used on a cancelled order whose return is done" in text_report
    assert "a live order's coupon is not used on it" in text_report


async def test_seckill_audit_checks_coupons(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, settings: Settings
) -> None:
    ids = await _books(client, auth, app_services)
    env = settings_environment(settings.model_copy(update={"log_level": "WARNING"}))

    async def run() -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.cli", "audit",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await process.communicate()
        assert process.returncode is not None
        return process.returncode, output.decode()

    code, output = await run()
    assert code == 0, output
    assert "coupon audit ok" in output
    keys = CouponKeys(app_services.settings.redis_key_prefix, int(ids["coupon"]))
    await app_services.redis.hincrby(keys.coupon, "remaining", -1)
    code, output = await run()
    assert code == 1, output
    assert "coupon audit FAILED" in output
