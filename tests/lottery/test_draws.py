"""Lotteries through the API: creating (and refusing bad ones), drawing, the daily limit
and the check-in, the window, and a draw crowd through real HTTP."""

import asyncio
from collections import Counter
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.container import Container
from app.ids import MAX_ID, MAX_INT
from app.store.lottery_keys import LotteryKeys
from tests.support.coupons import create_coupon
from tests.support.factories import Auth, assert_problem
from tests.support.lifecycle import store_orders
from tests.support.lottery import create_lottery, lottery_spec, prize_spec


async def draw(
    client: httpx.AsyncClient, auth: Auth, lottery_id: int, user: str = "u1"
) -> httpx.Response:
    return await client.post(f"/api/v1/lotteries/{lottery_id}/draw", headers=auth.headers(user))


async def test_create_and_draw_a_prize(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    coupon = await create_coupon(client, auth)
    lottery = await create_lottery(
        client,
        auth,
        prizes=[prize_spec("10 off", kind="coupon", coupon_id=coupon.id, quantity=2, weight=5)],
    )
    assert lottery["prizes"][0]["coupon_id"] == coupon.id
    assert lottery["no_prize_weight"] == 0
    won = await draw(client, auth, lottery["id"])
    assert won.status_code == 200, won.text
    prize = won.json()["prize"]
    assert (prize["id"], prize["kind"], prize["name"]) == (
        lottery["prizes"][0]["id"],
        "coupon",
        "10 off",
    )
    assert await store_orders(app_services) == 1
    mine = (await client.get("/api/v1/me/prizes", headers=auth.headers("u1"))).json()
    assert [(p["id"], p["status"], p["prize"]["kind"]) for p in mine] == [
        (prize["win_id"], "pending", "coupon")
    ]
    assert (await client.get("/api/v1/me/prizes", headers=auth.headers("u2"))).json() == []


async def test_no_win_answers_null(client: httpx.AsyncClient, auth: Auth) -> None:
    lottery = await create_lottery(client, auth, prizes=[prize_spec(weight=0)], no_prize_weight=1)
    response = await draw(client, auth, lottery["id"])
    assert response.status_code == 200, response.text
    assert response.json() == {"prize": None}


async def test_daily_limit_and_a_check_in_adds_one(client: httpx.AsyncClient, auth: Auth) -> None:
    lottery = await create_lottery(
        client, auth, prizes=[prize_spec(quantity=100)], draws_per_user_per_day=2
    )
    for _ in range(2):
        assert (await draw(client, auth, lottery["id"])).status_code == 200
    assert_problem(await draw(client, auth, lottery["id"]), 409, "limit_exceeded")
    checked = await client.post("/api/v1/me/check-in", headers=auth.headers("u1"))
    assert checked.status_code == 200, checked.text
    assert checked.json()["streak"] == 1
    assert_problem(
        await client.post("/api/v1/me/check-in", headers=auth.headers("u1")), 409, "invalid_state"
    )
    assert (await draw(client, auth, lottery["id"])).status_code == 200
    assert_problem(await draw(client, auth, lottery["id"]), 409, "limit_exceeded")
    # Someone else's count is their own.
    assert (await draw(client, auth, lottery["id"], "u2")).status_code == 200


async def test_a_check_in_redis_missed_is_brought_back_by_its_retry(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """Redis failed after the check-in's commit (its mark is gone): the stored check-in's
    draw comes back when the user tries again, though the retry is still a 409."""
    lottery = await create_lottery(
        client, auth, prizes=[prize_spec(quantity=100)], draws_per_user_per_day=1
    )
    assert (await draw(client, auth, lottery["id"])).status_code == 200
    checked = await client.post("/api/v1/me/check-in", headers=auth.headers("u1"))
    assert checked.status_code == 200, checked.text
    keys = LotteryKeys(app_services.settings.redis_key_prefix, lottery["id"])
    day = date.fromisoformat(checked.json()["day"])
    await app_services.redis.delete(keys.checked_in(day))
    assert_problem(await draw(client, auth, lottery["id"]), 409, "limit_exceeded")

    retried = await client.post("/api/v1/me/check-in", headers=auth.headers("u1"))

    assert_problem(retried, 409, "invalid_state")
    assert (await draw(client, auth, lottery["id"])).status_code == 200
    assert_problem(await draw(client, auth, lottery["id"]), 409, "limit_exceeded")


async def test_a_check_in_before_the_lottery_is_loaded_counts(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    checked = await client.post("/api/v1/me/check-in", headers=auth.headers("u1"))
    assert checked.status_code == 200
    lottery = await create_lottery(
        client, auth, prizes=[prize_spec(quantity=100)], draws_per_user_per_day=1
    )
    for _ in range(2):
        assert (await draw(client, auth, lottery["id"])).status_code == 200
    assert_problem(await draw(client, auth, lottery["id"]), 409, "limit_exceeded")


async def test_the_streak_counts_days_in_a_row(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    async with app_services.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO check_ins (user_id, day, streak) VALUES "
                "('u1', CAST(now() AS date) - 1, 4), ('u2', CAST(now() AS date) - 2, 9)"
            )
        )
    assert (await client.post("/api/v1/me/check-in", headers=auth.headers("u1"))).json()[
        "streak"
    ] == 5
    assert (await client.post("/api/v1/me/check-in", headers=auth.headers("u2"))).json()[
        "streak"
    ] == 1


async def test_window_and_unknown(client: httpx.AsyncClient, auth: Auth) -> None:
    later = await create_lottery(client, auth, starts_in=timedelta(hours=1))
    assert_problem(await draw(client, auth, later["id"]), 409, "not_started")
    brief = await create_lottery(
        client, auth, starts_in=timedelta(seconds=-2), lasts=timedelta(seconds=1)
    )
    assert_problem(await draw(client, auth, brief["id"]), 409, "ended")
    assert_problem(await draw(client, auth, 999), 404, "not_found")
    assert_problem(await draw(client, auth, MAX_ID), 404, "not_found")
    unauthenticated = await client.post(f"/api/v1/lotteries/{later['id']}/draw")
    assert_problem(unauthenticated, 401, "unauthorized")


@pytest.mark.parametrize(
    "change",
    [
        {"prizes": []},
        {"prizes": [prize_spec(weight=-1)]},
        {"prizes": [prize_spec(quantity=-1)]},
        {"prizes": [prize_spec(quantity=MAX_INT + 1)]},
        {"prizes": [prize_spec(weight=2**63)]},
        {"prizes": [prize_spec(kind="coupon")]},
        {"prizes": [prize_spec(kind="coupon", coupon_id=MAX_ID)]},
        {"prizes": [prize_spec(kind="coupon", coupon_id=MAX_ID + 1)]},
        {"prizes": [prize_spec(kind="points")]},
        {"prizes": [prize_spec(kind="item", points=5)]},
        {"prizes": [prize_spec(kind="ticket")]},
        {"prizes": [prize_spec(quantity="1")]},
        {"draws_per_user_per_day": 0},
        {"draws_per_user_per_day": MAX_INT + 1},
        {"no_prize_weight": -1},
        {"lasts": timedelta(seconds=-1)},
        {"prizes": [prize_spec()] * 51},
    ],
)
async def test_bad_lotteries_are_refused(
    client: httpx.AsyncClient, auth: Auth, change: dict[str, Any]
) -> None:
    response = await client.post(
        "/api/v1/admin/lotteries", json=lottery_spec(**change), headers=auth.admin()
    )
    assert_problem(response, 422, "validation_error")


async def test_the_largest_allowed_values(client: httpx.AsyncClient, auth: Auth) -> None:
    coupon = await create_coupon(client, auth)
    prizes = [
        prize_spec("x" * 200, kind="points", points=MAX_INT, quantity=MAX_INT, weight=MAX_INT),
        prize_spec(kind="coupon", coupon_id=coupon.id, quantity=MAX_INT, weight=MAX_INT),
    ] + [prize_spec(quantity=MAX_INT, weight=MAX_INT)] * 48
    lottery = await create_lottery(
        client, auth, prizes=prizes, draws_per_user_per_day=MAX_INT, no_prize_weight=MAX_INT
    )
    response = await draw(client, auth, lottery["id"])
    assert response.status_code == 200, response.text
    assert_problem(
        await client.post(
            f"/api/v1/admin/prizes/{'0' * 26}-{MAX_ID}/approve", headers=auth.admin()
        ),
        404,
        "not_found",
    )


CROWD_USERS = 100
DRAWS_PER_DAY = 5
PRIZES = 8


@pytest.mark.slow
async def test_500_concurrent_draws_on_8_prizes_give_exactly_8(
    client: httpx.AsyncClient, auth: Auth, http_base_url: str, app_services: Container
) -> None:
    """100 users draw 6 times each at once (5 a day allowed): 500 draws, 100 refused,
    8 prizes of one unit each, every one given once, stored once."""
    lottery = await create_lottery(
        client,
        auth,
        prizes=[prize_spec(f"Prize {n}", quantity=1, weight=1) for n in range(PRIZES)],
        draws_per_user_per_day=DRAWS_PER_DAY,
    )
    users = [f"u{n}" for n in range(CROWD_USERS)]
    headers = {user: auth.headers(user) for user in users}
    crowd = [
        httpx.AsyncClient(
            base_url=http_base_url, limits=httpx.Limits(max_connections=25), timeout=120
        )
        for _ in range(10)
    ]
    start = asyncio.Event()

    async def attempt(n: int, user: str) -> tuple[str, httpx.Response]:
        await start.wait()
        response = await crowd[n % len(crowd)].post(
            f"/api/v1/lotteries/{lottery['id']}/draw", headers=headers[user]
        )
        return user, response

    attempts = [user for user in users for _ in range(DRAWS_PER_DAY + 1)]
    tasks = [asyncio.create_task(attempt(n, user)) for n, user in enumerate(attempts)]
    start.set()
    results = await asyncio.gather(*tasks)
    for c in crowd:
        await c.aclose()

    codes = Counter(r.status_code for _, r in results)
    assert codes == {200: CROWD_USERS * DRAWS_PER_DAY, 409: CROWD_USERS}, codes
    assert {r.json()["code"] for _, r in results if r.status_code == 409} == {"limit_exceeded"}
    drawn = Counter(user for user, r in results if r.status_code == 200)
    assert set(drawn.values()) == {DRAWS_PER_DAY}
    wins = [
        (user, r.json()["prize"])
        for user, r in results
        if r.status_code == 200 and r.json()["prize"]
    ]
    assert len(wins) == PRIZES
    assert sorted(p["id"] for _, p in wins) == sorted(p["id"] for p in lottery["prizes"])

    assert await store_orders(app_services) == CROWD_USERS * DRAWS_PER_DAY
    assert await store_orders(app_services) == 0
    async with app_services.sessionmaker() as session:
        stored_wins = (
            await session.execute(
                text("SELECT id, user_id, prize_id FROM lottery_wins WHERE lottery_id = :l"),
                {"l": lottery["id"]},
            )
        ).all()
        per_user = (
            await session.execute(
                text(
                    "SELECT user_id, count(*) FROM lottery_draws WHERE lottery_id = :l "
                    "GROUP BY user_id"
                ),
                {"l": lottery["id"]},
            )
        ).all()
    assert {(w, u, p) for w, u, p in stored_wins} == {
        (p["win_id"], user, p["id"]) for user, p in wins
    }
    assert {count for _, count in per_user} == {DRAWS_PER_DAY}
    assert len(per_user) == CROWD_USERS
    keys = LotteryKeys(app_services.settings.redis_key_prefix, lottery["id"])
    assert set((await app_services.redis.hgetall(keys.stock)).values()) == {"0"}
    assert await app_services.redis.hlen(keys.queued) == 0


async def test_two_check_ins_at_once_count_once(client: httpx.AsyncClient, auth: Auth) -> None:
    answers = await asyncio.gather(
        *(client.post("/api/v1/me/check-in", headers=auth.headers("u1")) for _ in range(5))
    )
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409, 409]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"invalid_state"}
