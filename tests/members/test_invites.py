"""Invites: one code per user; accepted by a user with no paid order; inviter and
invitee rewarded once, through the coupon grant machinery, when the invitee's first
order is paid (however it is paid, however many orders follow)."""

import asyncio
import re
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.container import Container
from app.flows.grants import wait_for_background
from app.gateways.payment import SimulatedGateway
from tests.support.coupons import coupons_per_user, create_coupon
from tests.support.factories import Auth, assert_problem, create_live_item, problem_fields
from tests.support.lifecycle import stored_order
from tests.support.members import accept, invite_code, invite_rows
from tests.support.payments import notification, notify, paid_order, pay

# Each test has a database of its own: its first coupon template is number 1.
REWARD_COUPON = 1
REWARDED = {"invite_reward_coupon_id": REWARD_COUPON}
LONGEST_ID = "e" * 128  # the longest user id a token may carry


async def test_a_user_gets_the_same_code_each_time(client: httpx.AsyncClient, auth: Auth) -> None:
    first = await invite_code(client, auth, "alice")
    assert re.fullmatch(r"[A-Za-z0-9_-]{12}", first)
    assert await invite_code(client, auth, "alice") == first
    assert await invite_code(client, auth, "bob") != first
    codes = await asyncio.gather(*(invite_code(client, auth, "carol") for _ in range(10)))
    assert len(set(codes)) == 1


async def test_invites_need_a_token(client: httpx.AsyncClient, auth: Auth) -> None:
    assert_problem(await client.post("/api/v1/me/invite-code"), 401, "unauthorized")
    code = await invite_code(client, auth, "alice")
    assert_problem(await client.post(f"/api/v1/invites/{code}/accept"), 401, "unauthorized")


async def test_accepting_and_every_refusal(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    alice = await invite_code(client, auth, "alice")
    bob = await invite_code(client, auth, "bob")

    assert_problem(await accept(client, auth, "no-such-code", "carol"), 404, "not_found")
    own = assert_problem(await accept(client, auth, alice, "alice"), 422, "validation_error")
    assert problem_fields(own) == {"code"}

    accepted = await accept(client, auth, alice, "carol")
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert body["code"] == alice
    assert body["reward_status"] == "waiting"
    # The same code again: the invite as it stands; another code: refused.
    again = await accept(client, auth, alice, "carol")
    assert again.status_code == 200, again.text
    assert again.json() == body
    assert_problem(await accept(client, auth, bob, "carol"), 409, "invalid_state")

    # A user who has paid an order is no new user.
    item = await create_live_item(client, auth, stock=10)
    await paid_order(client, auth, app_services, item.id, user_id="dave")
    assert_problem(await accept(client, auth, alice, "dave"), 403, "audience_mismatch")
    assert (await invite_rows(app_services)).keys() == {"carol"}


@pytest.mark.parametrize("settings_overrides", [REWARDED])
async def test_both_are_rewarded_once_even_when_the_invitee_pays_again(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, settings_overrides: Any
) -> None:
    coupon = await create_coupon(client, auth, total_quantity=1)
    assert coupon.id == REWARD_COUPON
    item = await create_live_item(client, auth, stock=20, per_user_limit=5)
    code = await invite_code(client, auth, "alice")
    for invitee in ("carol", LONGEST_ID):
        assert (await accept(client, auth, code, invitee)).status_code == 200

    await paid_order(client, auth, app_services, item.id, user_id="carol")
    await paid_order(client, auth, app_services, item.id, user_id="carol")
    await wait_for_background()

    # Alice invited two; only carol has paid. A template whose claims ran out still
    # rewards: grants do not take from total_quantity.
    assert await coupons_per_user(app_services, coupon.id) == {"alice": 1, "carol": 1}
    assert (await accept(client, auth, code, "carol")).json()["reward_status"] == "granted"
    mine = (await client.get("/api/v1/me/coupons", headers=auth.headers("carol"))).json()
    assert [(c["coupon_id"], c["status"]) for c in mine] == [(coupon.id, "available")]

    await paid_order(client, auth, app_services, item.id, user_id=LONGEST_ID)
    await wait_for_background()
    assert await coupons_per_user(app_services, coupon.id) == {
        "alice": 2,
        "carol": 1,
        LONGEST_ID: 1,
    }


@pytest.mark.parametrize("settings_overrides", [REWARDED])
async def test_the_webhook_and_the_shopper_racing_reward_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, settings_overrides: Any
) -> None:
    coupon = await create_coupon(client, auth)
    assert coupon.id == REWARD_COUPON
    item = await create_live_item(client, auth, stock=50, per_user_limit=5, seckill_price="19.90")
    code = await invite_code(client, auth, "alice")
    gateway = app_services.gateway
    assert isinstance(gateway, SimulatedGateway)
    invitees = [f"new{n}" for n in range(10)]
    races = []
    for invitee in invitees:
        assert (await accept(client, auth, code, invitee)).status_code == 200
        for _ in range(2):  # two orders, each paid by the shopper and notified at once
            order_id = await stored_order(client, auth, app_services, item.id, user_id=invitee)
            charge = await gateway.charge(
                order_id=order_id, amount=Decimal("19.90"), payment_token="t"
            )
            races += [
                pay(client, auth.headers(invitee), order_id),
                notify(client, app_services, notification(order_id, "19.90", charge.reference)),
            ]

    answers = await asyncio.gather(*races)
    await wait_for_background()

    assert {r.status_code for r in answers} == {200}, [r.text for r in answers]
    assert await coupons_per_user(app_services, coupon.id) == {
        "alice": len(invitees),
        **dict.fromkeys(invitees, 1),
    }
    assert set((await invite_rows(app_services)).values()) == {("granted", None)}


async def test_without_a_reward_coupon_the_invite_is_recorded_as_unrewarded(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth, stock=10)
    code = await invite_code(client, auth, "alice")
    assert (await accept(client, auth, code, "carol")).status_code == 200

    await paid_order(client, auth, app_services, item.id, user_id="carol")

    [(status, error)] = (await invite_rows(app_services)).values()
    assert status == "failed"
    assert error is not None
    assert "SECKILL_INVITE_REWARD_COUPON_ID" in error


@pytest.mark.parametrize("settings_overrides", [{"invite_reward_coupon_id": 999}])
async def test_a_missing_reward_coupon_fails_the_reward_not_the_payment(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, settings_overrides: Any
) -> None:
    item = await create_live_item(client, auth, stock=10)
    code = await invite_code(client, auth, "alice")
    assert (await accept(client, auth, code, "carol")).status_code == 200

    await paid_order(client, auth, app_services, item.id, user_id="carol")  # 200: paid

    [(status, error)] = (await invite_rows(app_services)).values()
    assert status == "failed"
    assert error is not None
    assert "999" in error


@pytest.mark.parametrize("settings_overrides", [REWARDED])
async def test_accepting_while_paying_the_first_order_never_leaves_an_unrewarded_invite(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, settings_overrides: Any
) -> None:
    """Accept and the first payment at once: either the accept sees the payment (403) or
    the payment sees the invite (rewarded); never an accepted invite of a paying user
    left waiting."""
    coupon = await create_coupon(client, auth)
    assert coupon.id == REWARD_COUPON
    item = await create_live_item(client, auth, stock=100)
    code = await invite_code(client, auth, "alice")
    newcomers = [f"new{n}" for n in range(40)]
    orders = {
        user: await stored_order(client, auth, app_services, item.id, user_id=user)
        for user in newcomers
    }

    answers = await asyncio.gather(
        *(
            call
            for user in newcomers
            for call in (
                accept(client, auth, code, user),
                pay(client, auth.headers(user), orders[user]),
            )
        )
    )
    await wait_for_background()

    accepted = {
        user for user, a in zip(newcomers, answers[::2], strict=True) if a.status_code == 200
    }
    for answer in answers[::2]:
        assert answer.status_code in (200, 403), answer.text
    assert {r.status_code for r in answers[1::2]} == {200}
    assert await invite_rows(app_services) == dict.fromkeys(accepted, ("granted", None))
    rewarded = await coupons_per_user(app_services, coupon.id)
    assert rewarded == ({"alice": len(accepted)} if accepted else {}) | dict.fromkeys(accepted, 1)
