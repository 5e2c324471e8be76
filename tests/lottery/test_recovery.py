"""A Redis that lost or rolled back a lottery: draws answer `recovering` (nothing drawn)
until the hot-store check (app/flows/freshness.py) has rebuilt it from the draws Postgres
stored and those still queued for the writer; then each prize's stock is its quantity
less its wins, each user's draws of the day are counted, and no prize is given twice."""

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from app.cli.main import cli
from app.cli.operations import _recover
from app.container import Container
from app.flows.freshness import LOTTERIES, Verdict, check_once
from app.lottery.loading import business_day
from app.moments import utc_now
from app.store.lottery_keys import LotteryKeys
from tests.faults.test_rebuild_races import after_first_call
from tests.support.factories import Auth, assert_problem
from tests.support.lifecycle import rebuild_and_resume, store_orders
from tests.support.lottery import create_lottery, prize_spec

QUANTITY = 10


async def draw(client: httpx.AsyncClient, auth: Auth, lottery_id: int, user: str) -> httpx.Response:
    return await client.post(f"/api/v1/lotteries/{lottery_id}/draw", headers=auth.headers(user))


async def lottery_with_wins(client: httpx.AsyncClient, auth: Auth) -> dict[str, Any]:
    """Two prizes of 10 units, every draw wins while stock lasts; 2 draws a day each."""
    lottery = await create_lottery(
        client,
        auth,
        prizes=[prize_spec("A", quantity=QUANTITY), prize_spec("B", quantity=QUANTITY)],
        draws_per_user_per_day=2,
    )
    for user in ("u0", "u1", "u2", "u3"):
        assert (await draw(client, auth, lottery["id"], user)).json()["prize"] is not None
    return lottery


def keys_of(services: Container, lottery_id: int) -> LotteryKeys:
    return LotteryKeys(services.settings.redis_key_prefix, lottery_id)


async def forget_lottery(services: Container, lottery_id: int) -> None:
    """Redis lost every key of the lottery (restarted empty)."""
    pattern = f"{keys_of(services, lottery_id).tag}*"
    found = [key async for key in services.redis.scan_iter(match=pattern)]
    await services.redis.delete(*found)


async def stock(services: Container, lottery_id: int) -> dict[str, int]:
    left = await services.redis.hgetall(keys_of(services, lottery_id).stock)
    return {str(k): int(v) for k, v in left.items()}


async def stored_wins(services: Container, lottery_id: int) -> dict[int, int]:
    async with services.sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT prize_id, count(*) FROM lottery_wins WHERE lottery_id = :l "
                "GROUP BY prize_id"
            ),
            {"l": lottery_id},
        )
    return {int(p): int(c) for p, c in rows}


async def draw_everything(
    client: httpx.AsyncClient, auth: Auth, lottery_id: int, users: range
) -> int:
    won = 0
    for n in users:
        for _ in range(2):
            response = await draw(client, auth, lottery_id, f"x{n}")
            assert response.status_code == 200, response.text
            won += response.json()["prize"] is not None
    return won


async def test_redis_emptied_mid_lottery_is_frozen_rebuilt_and_resumed(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    lottery = await lottery_with_wins(client, auth)
    lottery_id = lottery["id"]
    assert await store_orders(app_services) == 4
    await forget_lottery(app_services, lottery_id)

    assert_problem(await draw(client, auth, lottery_id, "u0"), 503, "recovering")
    found = [f for f in await check_once(app_services) if f.family == LOTTERIES.name]
    assert [(f.entity_id, f.verdict) for f in found] == [(lottery_id, Verdict.UNLOADED)]
    # Rebuilt, but draws may have been answered and lost with Redis: frozen for the
    # operator, nothing drawn meanwhile.
    assert_problem(await draw(client, auth, lottery_id, "u0"), 503, "recovering")
    assert sum((await stock(app_services, lottery_id)).values()) == 2 * QUANTITY - 4
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "degraded")
    assert f"lotteries {lottery_id} (unloaded:" in ready.json()["sales"]
    # What `seckill recover --lottery ID` does (the second time: it was not frozen).
    assert await _recover(app_services.settings, [lottery_id], coupon=False, lottery=True) == []
    assert await _recover(app_services.settings, [lottery_id], coupon=False, lottery=True) == [
        lottery_id
    ]

    # Each user's draws of the day came back from Postgres.
    assert (await draw(client, auth, lottery_id, "u0")).status_code == 200
    assert_problem(await draw(client, auth, lottery_id, "u0"), 409, "limit_exceeded")
    await draw_everything(client, auth, lottery_id, range(40))
    await store_orders(app_services)
    assert await stored_wins(app_services, lottery_id) == {
        p["id"]: QUANTITY for p in lottery["prizes"]
    }
    assert await check_once(app_services) == []


async def test_a_rolled_back_lottery_counts_its_queued_draws(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    lottery = await lottery_with_wins(client, auth)
    lottery_id = lottery["id"]
    assert await store_orders(app_services) == 4
    # Two more wins, still queued for the writer when Redis rolls back.
    before = await stock(app_services, lottery_id)
    for user in ("u4", "u5"):
        assert (await draw(client, auth, lottery_id, user)).json()["prize"] is not None
    expected = await stock(app_services, lottery_id)
    assert sum(before.values()) - sum(expected.values()) == 2
    keys = keys_of(app_services, lottery_id)
    # An older snapshot: its sequence is behind what this process saw, and it believes
    # more stock remains than is true.
    await app_services.redis.hset(keys.lottery, "seq", 0)
    await app_services.redis.hset(
        keys.stock, mapping={str(p["id"]): QUANTITY for p in lottery["prizes"]}
    )
    assert_problem(await draw(client, auth, lottery_id, "u6"), 503, "recovering")

    found = await rebuild_and_resume(app_services)
    assert [(f.entity_id, f.verdict) for f in found if f.family == LOTTERIES.name] == [
        (lottery_id, Verdict.ROLLED_BACK)
    ]
    assert await stock(app_services, lottery_id) == expected
    assert (await draw(client, auth, lottery_id, "u6")).status_code == 200
    assert await store_orders(app_services) == 3
    wins = await stored_wins(app_services, lottery_id)
    assert sum(wins.values()) <= 7
    await draw_everything(client, auth, lottery_id, range(40))
    await store_orders(app_services)
    assert await stored_wins(app_services, lottery_id) == {
        p["id"]: QUANTITY for p in lottery["prizes"]
    }


async def test_a_lottery_never_built_is_loaded_by_the_check(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    lottery = await create_lottery(client, auth)
    assert await check_once(app_services) == []
    left = await stock(app_services, lottery["id"])
    assert left == {str(lottery["prizes"][0]["id"]): 1}
    assert (await draw(client, auth, lottery["id"], "u0")).status_code == 200


async def test_a_rebuild_counts_a_draw_the_writer_commits_while_it_reads_once(
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The draws still queued are read first, then one snapshot of Postgres: the writer
    storing them right after the snapshot began loses none and doubles none."""
    lottery = await lottery_with_wins(client, auth)
    lottery_id = lottery["id"]
    expected = await stock(app_services, lottery_id)
    keys = keys_of(app_services, lottery_id)
    await app_services.redis.hset(keys.lottery, "behind", 1)
    await app_services.redis.hset(keys.stock, mapping=dict.fromkeys(expected, QUANTITY))
    stored = after_first_call(
        monkeypatch, "app.lottery.repository.wins_by_prize", lambda: store_orders(app_services)
    )

    found = [f for f in await check_once(app_services) if f.family == LOTTERIES.name]

    assert stored == [4], "the writer stored every draw in the middle of the rebuild"
    assert [f.verdict for f in found] == [Verdict.ROLLED_BACK]
    assert await stock(app_services, lottery_id) == expected
    drawn = await app_services.redis.hgetall(
        keys.drawn(business_day(app_services.settings, utc_now()))
    )
    assert drawn == dict.fromkeys(("u0", "u1", "u2", "u3"), "1")


def test_recover_takes_one_family_at_a_time() -> None:
    result = CliRunner().invoke(cli, ["recover", "--lottery", "--queue", "1"])
    assert result.exit_code == 2
    assert "one family at a time" in result.output
