"""The campaign report over a hand-built campaign (tests/reports/campaign_data.py):
every figure as counted by hand, the CSV, the PNG, the CLI, and refused requests."""

import csv
import io
import json
import struct
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.campaigns.models import Campaign
from app.campaigns.service import get_campaign, phase_at
from app.container import Container
from tests.reports.campaign_data import (
    DAY,
    HOUR,
    THIS_YEAR,
    Orders,
    Phases,
    add_campaign,
    double_eleven,
)
from tests.support.campaigns import approve_campaign, create_campaign
from tests.support.factories import Auth, assert_problem, create_event, item_spec
from tests.support.lifecycle import store_orders
from tests.support.processes import start_cli


async def campaign_report(
    client: httpx.AsyncClient, auth: Auth, campaign_id: int, **params: str
) -> httpx.Response:
    return await client.get(
        f"/api/v1/admin/campaigns/{campaign_id}/report", params=params, headers=auth.admin()
    )


def figures(found: dict[str, Any]) -> tuple[int, int, int, Decimal, Decimal | None]:
    aov = found["aov"]
    return (
        found["orders"],
        found["units"],
        found["paid_orders"],
        Decimal(found["gmv"]),
        None if aov is None else Decimal(aov),
    )


async def test_report_totals_new_buyers_phases_and_channels(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    built = await double_eleven(app_services.sessionmaker)

    response = await campaign_report(client, auth, built.campaign_id)

    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["campaign_id"], report["name"], report["status"]) == (
        built.campaign_id,
        "Double 11, 2026",
        "approved",
    )
    assert report["current_phase"] is None  # it ended
    # 10 orders of 13 units; 7 paid (not the refunded, cancelled and unpaid ones).
    assert figures(report) == (10, 13, 7, Decimal("755.00"), Decimal("107.86"))
    # u1 (twice), u2, u4, u5; not u3 (last year's campaign first), u9 (no campaign first)
    # nor u6 (refunded).
    assert report["new_buyers"] == 4
    assert {phase: figures(found) for phase, found in report["by_phase"].items()} == {
        "warm_up": (1, 1, 1, Decimal("100.00"), Decimal("100.00")),
        "peak": (6, 9, 3, Decimal("560.00"), Decimal("186.67")),
        "return": (2, 2, 2, Decimal("70.00"), Decimal("35.00")),
        "outside": (1, 1, 1, Decimal("25.00"), Decimal("25.00")),
    }
    # The phase of each order is the one app.campaigns.service.phase_at gives it.
    expected = ["peak", "warm_up", "peak", "return", None, "peak", "peak", "peak", "peak"]
    async with app_services.sessionmaker() as session:
        campaign = await get_campaign(session, built.campaign_id)
    assert [phase_at(campaign, o.accepted_at) for o in built.orders[:9]] == expected
    channels = {c["channel"]: c for c in report["by_channel"]}
    assert [c["channel"] for c in report["by_channel"]] == ["ads", "app", "web", "other", None]
    assert {code: figures(found) for code, found in channels.items()} == {
        "ads": (0, 0, 0, Decimal("0"), None),
        "app": (5, 6, 4, Decimal("380.00"), Decimal("95.00")),
        "web": (2, 4, 1, Decimal("300.00"), Decimal("300.00")),
        "other": (1, 1, 1, Decimal("50.00"), Decimal("50.00")),
        None: (2, 2, 1, Decimal("25.00"), Decimal("25.00")),
    }
    assert {code: (found["cost"], found["roi"]) for code, found in channels.items()} == {
        "ads": ("50.00", 0.0),
        "app": ("100.00", 3.8),
        "web": ("0.00", None),  # cost 0: no ROI
        "other": (None, None),  # not listed: no cost
        None: (None, None),
    }


async def test_report_targets_and_baseline(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    built = await double_eleven(app_services.sessionmaker)

    report = (await campaign_report(client, auth, built.campaign_id)).json()

    assert report["targets"] == {
        "gmv": {"target": "1000.00", "actual": "755.00", "completion": 0.755},
        "orders": {"target": 20, "actual": 10, "completion": 0.5},
        "new_buyers": {"target": 5, "actual": 4, "completion": 0.8},
    }
    baseline = report["baseline"]
    assert (baseline["campaign_id"], baseline["name"]) == (built.baseline_id, "Double 11, 2025")
    # Last year: 3 orders, 6 units, 2 paid for 500.00 (250.00 each), 2 new buyers.
    assert {name: baseline[name] for name in baseline if name not in ("campaign_id", "name")} == {
        "orders": {"value": 3, "change": round(10 / 3 - 1, 4)},
        "units": {"value": 6, "change": round(13 / 6 - 1, 4)},
        "paid_orders": {"value": 2, "change": 2.5},
        "gmv": {"value": "500.00", "change": 0.51},
        "aov": {"value": "250.00", "change": round(107.86 / 250 - 1, 4)},
        "new_buyers": {"value": 2, "change": 1.0},
    }
    # Last year's own report: no baseline, its targets absent.
    last = (await campaign_report(client, auth, built.baseline_id)).json()
    assert last["baseline"] is None
    assert last["targets"] == {"gmv": None, "orders": None, "new_buyers": None}
    assert (last["orders"], last["new_buyers"]) == (3, 2)


async def test_report_series_is_cumulative_paid_gmv_over_the_campaign(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    built = await double_eleven(app_services.sessionmaker)

    series = (await campaign_report(client, auth, built.campaign_id)).json()["series"]

    # An hour before the warm-up (order 5) to the end of the return: hours fit 120 points.
    assert series["bucket_seconds"] == 3600
    points = series["points"]
    assert datetime.fromisoformat(points[0]["at"]) == THIS_YEAR.warm_up - HOUR
    assert datetime.fromisoformat(points[-1]["at"]) == THIS_YEAR.ends_at
    gmv = [Decimal(p["gmv"]) for p in points]
    assert gmv == sorted(gmv)
    assert (gmv[0], gmv[-1]) == (Decimal(0), Decimal("755.00"))
    assert points[-1]["paid_orders"] == 7
    # The first hour holds order 5 only.
    assert (gmv[1], points[1]["paid_orders"]) == (Decimal("25.00"), 1)


async def test_report_of_a_campaign_without_orders_against_an_empty_baseline(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    async with app_services.sessionmaker() as session, session.begin():
        empty = await add_campaign(session, name="Quiet", phases=THIS_YEAR)
        campaign = await add_campaign(
            session,
            name="Loud",
            phases=THIS_YEAR,
            target_orders=1,
            baseline_campaign_id=empty,
        )
        Orders(session).add(
            campaign_id=campaign, user_id="u1", amount="9.90", accepted_at=THIS_YEAR.peak
        )

    quiet = (await campaign_report(client, auth, empty)).json()
    loud = (await campaign_report(client, auth, campaign)).json()
    png = await client.get(f"/api/v1/admin/campaigns/{empty}/report.png", headers=auth.admin())

    assert figures(quiet) == (0, 0, 0, Decimal(0), None)
    assert quiet["by_channel"] == []
    assert png.status_code == 200
    assert loud["targets"]["orders"] == {"target": 1, "actual": 1, "completion": 1.0}
    # Nothing to compare with: every change is null.
    assert {loud["baseline"][n]["change"] for n in ("orders", "gmv", "aov", "new_buyers")} == {None}
    assert loud["baseline"]["aov"]["value"] is None


async def test_report_of_a_campaign_with_a_peak_only(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    async with app_services.sessionmaker() as session, session.begin():
        campaign = await add_campaign(session, name="Peak", phases=THIS_YEAR, peak_only=True)
        orders = Orders(session)
        for at in (THIS_YEAR.warm_up, THIS_YEAR.peak, THIS_YEAR.return_ - HOUR, THIS_YEAR.return_):
            orders.add(campaign_id=campaign, user_id="u1", amount="10.00", accepted_at=at)

    report = (await campaign_report(client, auth, campaign)).json()

    assert report["phases"]["warm_up"] is None
    assert {phase: found["orders"] for phase, found in report["by_phase"].items()} == {
        "warm_up": 0,
        "peak": 2,
        "return": 0,
        "outside": 2,  # a day before the peak, and the instant it ended
    }
    assert report["new_buyers"] == 1
    # The series runs from the first order to the last (both outside the peak).
    points = report["series"]["points"]
    assert datetime.fromisoformat(points[0]["at"]) == THIS_YEAR.warm_up
    assert Decimal(points[-1]["gmv"]) == Decimal("40.00")


async def test_report_csv_one_figure_a_row(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    built = await double_eleven(app_services.sessionmaker)

    response = await campaign_report(client, auth, built.campaign_id, format="csv")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="campaign-{built.campaign_id}.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    assert list(rows[0]) == ["section", "name", "metric", "value"]
    cells = {(r["section"], r["name"], r["metric"]): r["value"] for r in rows}
    assert len(cells) == len(rows)  # one row a figure
    assert cells[("campaign", "Double 11, 2026", "gmv")] == "755.00"
    assert cells[("campaign", "Double 11, 2026", "new_buyers")] == "4"
    assert cells[("phase", "peak", "orders")] == "6"
    assert cells[("phase", "outside", "gmv")] == "25.00"
    assert cells[("channel", "app", "roi")] == "3.8"
    assert cells[("channel", "web", "roi")] == ""
    assert cells[("channel", "(none)", "orders")] == "2"
    assert cells[("target", "gmv", "completion")] == "0.755"
    assert cells[("baseline", "gmv", "value")] == "500.00"
    assert cells[("baseline", "gmv", "change")] == "0.51"


async def test_report_png_is_a_png_of_the_expected_size(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    built = await double_eleven(app_services.sessionmaker)

    response = await client.get(
        f"/api/v1/admin/campaigns/{built.campaign_id}/report.png", headers=auth.admin()
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    png = response.content
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (1000, 500)


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v1/admin/campaigns/999999/report", {}, 404, "not_found"),
        ("/api/v1/admin/campaigns/999999/report.png", {}, 404, "not_found"),
        ("/api/v1/admin/campaigns/999999/report", {"format": "csv"}, 404, "not_found"),
        ("/api/v1/admin/campaigns/0/report", {}, 422, "validation_error"),
        ("/api/v1/admin/campaigns/99999999999999999999/report", {}, 422, "validation_error"),
        ("/api/v1/admin/campaigns/1/report", {"format": "xml"}, 422, "validation_error"),
    ],
)
async def test_bad_campaign_report_requests(
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    path: str,
    params: dict[str, str],
    status: int,
    code: str,
) -> None:
    async with app_services.sessionmaker() as session, session.begin():
        await add_campaign(session, name="One", phases=THIS_YEAR)

    assert_problem(await client.get(path, params=params, headers=auth.admin()), status, code)


async def test_campaign_report_is_for_operators(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    async with app_services.sessionmaker() as session, session.begin():
        campaign = await add_campaign(session, name="One", phases=THIS_YEAR)

    for suffix in ("report", "report.png"):
        path = f"/api/v1/admin/campaigns/{campaign}/{suffix}"
        assert_problem(await client.get(path, headers=auth.headers()), 403, "forbidden")
        assert_problem(await client.get(path), 401, "unauthorized")


async def test_seckill_report_campaign_writes_json_csv_and_png(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, tmp_path: Path
) -> None:
    built = await double_eleven(app_services.sessionmaker)
    out = tmp_path / "out"
    log = tmp_path / "cli.log"

    process = await start_cli(
        app_services.settings,
        "report",
        "--campaign",
        str(built.campaign_id),
        "--out",
        str(out),
        log=log,
    )

    assert await process.wait() == 0, log.read_text()
    name = f"campaign-{built.campaign_id}"
    written = json.loads((out / f"{name}.json").read_text())
    api = (await campaign_report(client, auth, built.campaign_id)).json()
    for field in ("orders", "gmv", "new_buyers", "by_phase", "by_channel", "targets", "baseline"):
        assert written[field] == api[field], field
    assert (out / f"{name}.csv").read_bytes().startswith(b"section,name,metric,value\r\n")
    png = (out / f"{name}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out / f"{name}.png") in log.read_text()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("report", "--campaign", "999999"), "No campaign 999999."),
        (("report",), "Give an EVENT_ID or --campaign ID"),
        (("report", "1", "--campaign", "1"), "Give an EVENT_ID or --campaign ID"),
        (("report", "--campaign", "1", "--compare", "2"), "--compare"),
    ],
)
async def test_seckill_report_refuses(
    app_services: Container, tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    log = tmp_path / "cli.log"

    process = await start_cli(app_services.settings, *args, "--out", str(tmp_path), log=log)

    assert await process.wait() == 2, log.read_text()
    assert says in log.read_text()
    assert "campaign-" not in log.read_text()  # nothing written


async def test_report_of_a_campaign_sold_through_the_api(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """The order writer stamps the campaign and the channel: the report counts them."""
    campaign = await create_campaign(client, auth)
    event = await create_event(
        client, auth, campaign_id=campaign["id"], items=[item_spec(seckill_price="99.00")]
    )
    await approve_campaign(client, auth, campaign["id"])
    item_id = event.items[0].id
    accepted = {}
    for user, channel in (("u1", "app"), ("u2", "wechat"), ("u3", "tiktok"), ("u4", None)):
        response = await client.post(
            f"/api/v1/items/{item_id}/purchase",
            json={"quantity": 1},
            headers={**auth.headers(user), **({"X-Channel": channel} if channel else {})},
        )
        assert response.status_code == 202, response.text
        accepted[user] = response.json()["order_id"]
    await store_orders(app_services)
    for user in ("u1", "u3"):
        paid = await client.post(f"/api/v1/orders/{accepted[user]}/pay", headers=auth.headers(user))
        assert paid.status_code == 200, paid.text

    report = (await campaign_report(client, auth, campaign["id"])).json()

    assert figures(report) == (4, 4, 2, Decimal("198.00"), Decimal("99.00"))
    assert report["new_buyers"] == 2
    assert report["current_phase"] == "peak"
    assert report["by_phase"]["peak"]["orders"] == 4
    assert {c["channel"]: (c["orders"], c["gmv"]) for c in report["by_channel"]} == {
        "app": (1, "99.00"),
        "wechat": (1, "0.00"),
        "other": (1, "99.00"),
        None: (1, "0.00"),
    }
    assert report["targets"]["orders"] == {"target": 500, "actual": 4, "completion": 0.008}


async def test_report_of_a_campaign_over_centuries(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    """Phases as far apart as the API takes them: the series and the chart stay in range."""
    first, last = datetime(1970, 1, 2, tzinfo=UTC), datetime(9998, 12, 31, tzinfo=UTC)
    async with app_services.sessionmaker() as session, session.begin():
        campaign = await add_campaign(
            session, name="Forever", phases=Phases(first), target_gmv=Decimal("1.00")
        )
        await session.execute(
            update(Campaign)
            .where(Campaign.id == campaign)
            .values(return_ends_at=last, return_starts_at=last - DAY)
        )
        Orders(session).add(campaign_id=campaign, user_id="u1", amount="5.00", accepted_at=last)

    report = await campaign_report(client, auth, campaign)
    png = await client.get(f"/api/v1/admin/campaigns/{campaign}/report.png", headers=auth.admin())

    assert report.status_code == 200, report.text
    points = report.json()["series"]["points"]
    assert len(points) <= 122
    assert Decimal(points[-1]["gmv"]) == Decimal("5.00")
    assert png.status_code == 200, png.text
