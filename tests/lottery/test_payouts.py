"""Won prizes paid once: coupons and points by a payout job with progress (retried
safely, two runners at once), items by an operator's approval or rejection."""

import asyncio
from typing import Any

import httpx
from sqlalchemy import text

from app.container import Container
from app.flows.lottery_payouts import PayoutRunner
from app.lottery import repository
from app.lottery.payouts import pay_win
from tests.support.coupons import create_coupon
from tests.support.factories import Auth, assert_problem
from tests.support.lifecycle import store_orders
from tests.support.lottery import create_lottery, prize_spec

USERS = [f"u{n}" for n in range(6)]


async def won_lottery(
    client: httpx.AsyncClient, auth: Auth, services: Container, *prizes: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every user draws once, and every draw wins (enough stock, no weight of nothing)."""
    lottery = await create_lottery(client, auth, prizes=list(prizes))
    won = []
    for user in USERS:
        response = await client.post(
            f"/api/v1/lotteries/{lottery['id']}/draw", headers=auth.headers(user)
        )
        won.append(response.json()["prize"])
    assert await store_orders(services) == len(USERS)
    return lottery, won


async def start_payout(client: httpx.AsyncClient, auth: Auth, lottery_id: int) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/admin/lotteries/{lottery_id}/payouts", headers=auth.admin()
    )
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


async def prize_coupons(services: Container) -> list[tuple[str, str]]:
    async with services.sessionmaker() as session:
        rows = await session.execute(
            text("SELECT id, user_id FROM user_coupons WHERE source = 'prize' ORDER BY id")
        )
    return [(i, u) for i, u in rows]


async def statuses(client: httpx.AsyncClient, auth: Auth) -> dict[str, str]:
    found = {}
    for user in USERS:
        for prize in (await client.get("/api/v1/me/prizes", headers=auth.headers(user))).json():
            found[prize["id"]] = prize["status"]
    return found


async def test_a_payout_job_pays_coupons_and_points_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    coupon = await create_coupon(client, auth)
    lottery, won = await won_lottery(
        client,
        auth,
        app_services,
        prize_spec("Coupon", kind="coupon", coupon_id=coupon.id, quantity=10),
        prize_spec("Points", kind="points", points=50, quantity=10),
    )
    job = await start_payout(client, auth, lottery["id"])
    assert (job["kind"], job["status"], job["done"], job["total"]) == (
        "lottery_payout",
        "running",
        0,
        len(USERS),
    )
    runner = PayoutRunner(sessionmaker=app_services.sessionmaker, settings=app_services.settings)
    assert await runner.run(job["id"])
    progress = (await client.get(f"/api/v1/admin/jobs/{job['id']}", headers=auth.admin())).json()
    assert (progress["status"], progress["done"]) == ("done", len(USERS))
    assert set((await statuses(client, auth)).values()) == {"paid"}
    coupon_winners = sorted(u for u, p in zip(USERS, won, strict=True) if p["kind"] == "coupon")
    assert sorted(u for _, u in await prize_coupons(app_services)) == coupon_winners
    async with app_services.sessionmaker() as session:
        points = (
            await session.execute(
                text("SELECT user_id, points_paid FROM lottery_wins WHERE points_paid IS NOT NULL")
            )
        ).all()
    points_winners = [u for u, p in zip(USERS, won, strict=True) if p["kind"] == "points"]
    assert sorted(points) == sorted((u, 50) for u in points_winners)

    # Asked again: nothing is pending, nothing paid twice.
    again = await start_payout(client, auth, lottery["id"])
    assert (again["status"], again["total"]) == ("done", 0)
    assert not await runner.run(job["id"])  # done: nobody takes it again
    assert len(await prize_coupons(app_services)) == len(coupon_winners)
    # The points are in each winner's ledger, once.
    for user in points_winners:
        ledger = (await client.get("/api/v1/me/points", headers=auth.headers(user))).json()
        assert ledger["balance"] == 50
        assert [(e["reason"], e["points"]) for e in ledger["entries"]] == [("lottery_prize", 50)]


async def test_a_retried_payout_pays_each_win_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    coupon = await create_coupon(client, auth)
    lottery, _won = await won_lottery(
        client,
        auth,
        app_services,
        prize_spec("Coupon", kind="coupon", coupon_id=coupon.id, quantity=10),
    )
    # Two jobs for the same wins, run at once, plus one whose runner died before recording
    # its progress (its lease ran out): each win is paid once in all.
    jobs = [await start_payout(client, auth, lottery["id"]) for _ in range(3)]
    async with app_services.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = :id"),
            {"id": jobs[2]["id"]},
        )
    settings = app_services.settings.model_copy(update={"lottery_payout_batch_size": 2})
    runner = PayoutRunner(sessionmaker=app_services.sessionmaker, settings=settings)
    await asyncio.gather(runner.run(jobs[0]["id"]), runner.run(jobs[1]["id"]))
    assert await runner.resume_orphans() == 1
    assert len(await prize_coupons(app_services)) == len(USERS)
    assert set((await statuses(client, auth)).values()) == {"paid"}

    # The payout step itself, repeated on a paid win: nothing more.
    async with app_services.sessionmaker() as session, session.begin():
        win = (await repository.wins_of_user(session, user_id=USERS[0], limit=1, offset=0))[0]
        assert not await pay_win(session, win)
    assert len(await prize_coupons(app_services)) == len(USERS)


async def test_items_wait_for_approval(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    lottery, won = await won_lottery(
        client, auth, app_services, prize_spec("Bike", kind="item", quantity=10)
    )
    assert set((await statuses(client, auth)).values()) == {"pending_approval"}
    # A payout job does not pay items.
    assert (await start_payout(client, auth, lottery["id"]))["total"] == 0
    first, second = won[0]["win_id"], won[1]["win_id"]
    approved = await client.post(f"/api/v1/admin/prizes/{first}/approve", headers=auth.admin())
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["paid_at"] is not None) == ("paid", True)
    rejected = await client.post(f"/api/v1/admin/prizes/{second}/reject", headers=auth.admin())
    assert (rejected.json()["status"], rejected.json()["paid_at"]) == ("rejected", None)
    for win_id in (first, second):
        for action in ("approve", "reject"):
            again = await client.post(
                f"/api/v1/admin/prizes/{win_id}/{action}", headers=auth.admin()
            )
            assert_problem(again, 409, "invalid_state")
    shopper = await client.post(f"/api/v1/admin/prizes/{first}/approve", headers=auth.headers())
    assert_problem(shopper, 403, "forbidden")
    unknown = f"{'0' * 26}-{lottery['id']}"
    assert_problem(
        await client.post(f"/api/v1/admin/prizes/{unknown}/approve", headers=auth.admin()),
        404,
        "not_found",
    )
    assert_problem(
        await client.post("/api/v1/admin/prizes/nonsense/approve", headers=auth.admin()),
        422,
        "validation_error",
    )
    assert_problem(
        await client.post("/api/v1/admin/lotteries/999/payouts", headers=auth.admin()),
        404,
        "not_found",
    )
