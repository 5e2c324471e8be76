"""The lottery's report (JSON, CSV) and live stats (the dashboard's lottery panel)."""

import httpx

from app.container import Container
from tests.support.factories import Auth, assert_problem
from tests.support.lifecycle import store_orders
from tests.support.lottery import create_lottery, prize_spec


async def test_report_and_stats(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    lottery = await create_lottery(
        client,
        auth,
        prizes=[prize_spec("Bike", kind="item", quantity=2, weight=1)],
        no_prize_weight=0,
        draws_per_user_per_day=1,
    )
    lottery_id = lottery["id"]
    won = []
    for user in ("a", "b", "c"):
        response = await client.post(
            f"/api/v1/lotteries/{lottery_id}/draw", headers=auth.headers(user)
        )
        won.append(response.json()["prize"])
    assert await store_orders(app_services) == 3
    first = next(p for p in won if p)["win_id"]
    await client.post(f"/api/v1/admin/prizes/{first}/approve", headers=auth.admin())

    report = (
        await client.get(f"/api/v1/admin/lotteries/{lottery_id}/report", headers=auth.admin())
    ).json()
    assert (report["draws"], report["drawers"], report["wins"]) == (3, 3, 2)
    assert report["pending_approvals"] == 1
    assert [
        (p["won"], p["remaining"], p["paid"], p["pending_approval"]) for p in report["prizes"]
    ] == [(2, 0, 1, 1)]
    csv = await client.get(
        f"/api/v1/admin/lotteries/{lottery_id}/report?format=csv", headers=auth.admin()
    )
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[-1] == "total,,,2,2,0,1,1"

    stats = (
        await client.get(f"/api/v1/admin/lotteries/{lottery_id}/stats", headers=auth.admin())
    ).json()
    assert (stats["draws"], stats["frozen"], stats["pending_approvals"]) == (3, False, 1)
    assert [(p["won"], p["remaining"]) for p in stats["prizes"]] == [(2, 0)]

    for path in ("report", "stats"):
        assert_problem(
            await client.get(f"/api/v1/admin/lotteries/999/{path}", headers=auth.admin()),
            404,
            "not_found",
        )
        assert_problem(
            await client.get(
                f"/api/v1/admin/lotteries/{lottery_id}/{path}", headers=auth.headers()
            ),
            403,
            "forbidden",
        )


async def test_the_dashboard_has_a_lottery_panel(client: httpx.AsyncClient) -> None:
    page = (await client.get("/dashboard")).text
    assert 'data-testid="lottery-prizes"' in page
    script = (await client.get("/dashboard/dashboard.js")).text
    assert "/api/v1/admin/lotteries/${id}/stats" in script
