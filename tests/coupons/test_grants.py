"""Bulk grants: a background job with progress; each user one coupon per grant, even
when the grant is retried, or killed mid-way and resumed."""

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.config import Settings
from app.container import Container
from app.flows.grants import GrantRunner, wait_for_background
from tests.support.coupons import coupons_per_user, create_coupon
from tests.support.factories import Auth, assert_problem, create_live_item
from tests.support.lifecycle import store_orders
from tests.support.processes import settings_environment
from tests.support.waiting import eventually

PROJECT_ROOT = Path(__file__).resolve().parents[2]


async def grant(
    client: httpx.AsyncClient,
    auth: Auth,
    coupon_id: int,
    body: dict[str, Any],
    key: str | None = None,
) -> httpx.Response:
    headers = auth.admin() | ({"Idempotency-Key": key} if key else {})
    return await client.post(
        f"/api/v1/admin/coupons/{coupon_id}/grants", json=body, headers=headers
    )  # fmt: skip


async def job(client: httpx.AsyncClient, auth: Auth, job_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/admin/jobs/{job_id}", headers=auth.admin())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_grant_to_a_list(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    coupon = await create_coupon(client, auth, total_quantity=1)
    users = [f"u{n}" for n in range(120)] + ["u1", "u2"]  # duplicates get one coupon
    response = await grant(client, auth, coupon.id, {"user_ids": users})
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    await wait_for_background()
    assert (await job(client, auth, job_id)) | {"created_at": 0, "updated_at": 0,
                                                "finished_at": 0} == {
        "id": job_id, "kind": "coupon_grant", "status": "done", "done": 120, "total": 120,
        "error": None, "created_at": 0, "updated_at": 0, "finished_at": 0,
    }  # fmt: skip
    assert await coupons_per_user(app_services, coupon.id) == {f"u{n}": 1 for n in range(120)}
    mine = (await client.get("/api/v1/me/coupons", headers=auth.headers("u7"))).json()
    assert [(c["coupon_id"], c["status"]) for c in mine] == [(coupon.id, "available")]
    # Grants do not take from the claimable pool.
    assert (await client.get(f"/api/v1/coupons/{coupon.id}")).json()["remaining"] == 1


async def test_a_retried_grant_request_grants_once(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    coupon = await create_coupon(client, auth)
    answers = await asyncio.gather(
        *(grant(client, auth, coupon.id, {"user_ids": ["a", "b"]}, key="g-1") for _ in range(4))
    )
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["job_id"] for a in answers}) == 1
    await wait_for_background()
    assert await coupons_per_user(app_services, coupon.id) == {"a": 1, "b": 1}


async def test_grant_to_the_buyers_of_an_event(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    item = await create_live_item(client, auth)
    for user in ("b1", "b2", "b1"):
        response = await client.post(
            f"/api/v1/items/{item.id}/purchase", json={}, headers=auth.headers(user)
        )
        assert response.status_code == 202
    await store_orders(app_services)
    coupon = await create_coupon(client, auth)
    response = await grant(client, auth, coupon.id, {"buyers_of_event": item.event_id})
    job_id = response.json()["job_id"]
    await wait_for_background()
    assert (await job(client, auth, job_id))["total"] == 2
    assert await coupons_per_user(app_services, coupon.id) == {"b1": 1, "b2": 1}
    # No buyers: done at once.
    response = await grant(client, auth, coupon.id, {"buyers_of_event": 999})
    assert (await job(client, auth, response.json()["job_id"]))["status"] == "done"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "user_ids"),
        ({"user_ids": []}, "user_ids"),
        ({"user_ids": ["a"], "buyers_of_event": 1}, "buyers_of_event"),
        ({"user_ids": [""]}, "user_ids.0"),
        ({"buyers_of_event": 0}, "buyers_of_event"),
        ({"users": ["a"]}, "users"),
    ],
)
async def test_bad_grants_are_422(
    client: httpx.AsyncClient, auth: Auth, body: dict[str, Any], field: str
) -> None:
    coupon = await create_coupon(client, auth)
    problem = assert_problem(await grant(client, auth, coupon.id, body), 422, "validation_error")
    assert field in {e["field"] for e in problem["errors"]}, problem


async def test_unknowns_and_roles(client: httpx.AsyncClient, auth: Auth) -> None:
    assert_problem(await grant(client, auth, 4242, {"user_ids": ["a"]}), 404, "not_found")
    assert_problem(
        await client.get("/api/v1/admin/jobs/4242", headers=auth.admin()), 404, "not_found"
    )
    assert_problem(
        await client.get("/api/v1/admin/jobs/1", headers=auth.headers()), 403, "forbidden"
    )


async def test_a_cancelled_runner_is_resumed_by_the_next(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    coupon = await create_coupon(client, auth)
    settings = app_services.settings.model_copy(update={"grant_batch_size": 50})
    runner = GrantRunner(sessionmaker=app_services.sessionmaker, settings=settings)
    users = [f"u{n}" for n in range(1000)]
    response = await grant(client, auth, coupon.id, {"user_ids": users})
    job_id = response.json()["job_id"]
    await wait_for_background()  # the API's own run: all of it
    assert await runner.run(job_id) is False  # done: nothing to take
    # A second grant, run by a runner cancelled after a few steps.
    response = await grant(client, auth, coupon.id, {"user_ids": users})
    second = response.json()["job_id"]
    await wait_for_background()
    async with app_services.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE jobs SET status = 'running', done = 0, lease_until = NULL WHERE id = :i"),
            {"i": second},
        )  # as if its coupons were granted but its progress lost: a resume re-grants nothing
    steps = 0

    def progress(done: int, total: int) -> None:
        nonlocal steps
        steps += 1
        if steps == 4:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await runner.run(second, progress)
    assert (await job(client, auth, second))["done"] == 150
    assert await runner.resume_orphans() == 1
    assert (await job(client, auth, second))["status"] == "done"
    assert await coupons_per_user(app_services, coupon.id) == dict.fromkeys(users, 2)


@pytest.mark.faults
async def test_a_grant_killed_mid_way_and_resumed_grants_each_user_once(
    client: httpx.AsyncClient, auth: Auth, settings: Settings, app_services: Container,
    tmp_path: Path,
) -> None:  # fmt: skip
    coupon = await create_coupon(client, auth)
    users = [f"user-{n}" for n in range(20_000)]
    users_file = tmp_path / "users.txt"
    users_file.write_text("\n".join(users) + "\n")
    env = settings_environment(
        settings.model_copy(update={"grant_batch_size": 200, "job_lease_seconds": 1.0})
    )
    log = (tmp_path / "grant.log").open("ab")
    first = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "grant", str(coupon.id), "--users-file",
        str(users_file), env=env, stdout=log, stderr=log, cwd=PROJECT_ROOT,
    )  # fmt: skip

    async def some_progress() -> bool:
        async with app_services.sessionmaker() as session:
            done = await session.scalar(text("SELECT max(done) FROM jobs"))
        return bool(done)

    await eventually(some_progress)
    first.send_signal(signal.SIGKILL)
    await first.wait()
    async with app_services.sessionmaker() as session:
        job_id, done, status = (
            await session.execute(text("SELECT id, done, status FROM jobs"))
        ).one()
    assert status == "running"
    assert 0 < done < len(users), "killed too late to prove anything; raise the user count"

    second = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "grant", "--resume", str(job_id),
        env=env, stdout=log, stderr=log, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert await second.wait() == 0, (tmp_path / "grant.log").read_text()[-3000:]
    log.close()

    state = await job(client, auth, job_id)
    assert (state["status"], state["done"], state["total"]) == ("done", len(users), len(users))
    per_user = await coupons_per_user(app_services, coupon.id)
    assert per_user == dict.fromkeys(users, 1)
