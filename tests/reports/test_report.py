"""The sale report: its totals equal Postgres's, the CSV agrees, the PNG is a valid
image of the expected size, a comparison with an earlier event, and bad requests."""

import csv
import io
import json
import struct
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.container import Container
from app.events.schemas import EventRead
from tests.support.factories import Auth, assert_problem, create_event, item_spec
from tests.support.lifecycle import bought, store_orders
from tests.support.processes import start_cli


async def sale_with_orders(client: httpx.AsyncClient, auth: Auth, services: Container) -> EventRead:
    """Two items; one sells out. Orders paid, cancelled, refunded, and left unpaid."""
    event = await create_event(
        client,
        auth,
        items=[
            item_spec(sku="A", name="Phone", stock=3, per_user_limit=2, seckill_price="100.00"),
            item_spec(sku="B", name="Buds", stock=50, per_user_limit=5, seckill_price="9.90"),
        ],
    )
    a, b = event.items
    orders = {
        "paid": await bought(client, auth, a.id, user_id="u1", quantity=2),
        "refunded": await bought(client, auth, a.id, user_id="u2"),
        "cancelled": await bought(client, auth, b.id, user_id="u1", quantity=3),
        "paid_b": await bought(client, auth, b.id, user_id="u3", quantity=4),
        "unpaid": await bought(client, auth, b.id, user_id="u4"),
    }
    await store_orders(services)
    for key, user in (("paid", "u1"), ("refunded", "u2"), ("paid_b", "u3")):
        paid = await client.post(f"/api/v1/orders/{orders[key]}/pay", headers=auth.headers(user))
        assert paid.status_code == 200, paid.text
    cancelled = await client.post(
        f"/api/v1/orders/{orders['cancelled']}/cancel", headers=auth.headers("u1")
    )
    assert cancelled.status_code == 200
    refunded = await client.post(
        f"/api/v1/admin/orders/{orders['refunded']}/refund", headers=auth.admin()
    )
    assert refunded.status_code == 200, refunded.text
    return event


def seconds_between(later: datetime, earlier: datetime) -> float:
    return round((later - earlier).total_seconds(), 3)


async def database_totals(services: Container, event_id: int) -> dict[str, Any]:
    async with services.sessionmaker() as session:
        row = (
            await session.execute(
                text(
                    """
                    SELECT count(*) AS orders, sum(quantity) AS units,
                           count(*) FILTER (WHERE status = 'paid') AS paid_orders,
                           sum(quantity) FILTER (WHERE status = 'paid') AS paid_units,
                           count(*) FILTER (WHERE status = 'cancelled') AS cancelled_orders,
                           count(*) FILTER (WHERE status = 'refunded') AS refunded_orders,
                           count(*) FILTER (WHERE status = 'pending_payment') AS pending,
                           sum(amount) FILTER (WHERE status = 'paid') AS gmv,
                           count(DISTINCT user_id) AS buyers
                    FROM orders WHERE event_id = :event_id
                    """
                ),
                {"event_id": event_id},
            )
        ).one()
    return dict(row._mapping)


async def test_report_totals_equal_the_database(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await sale_with_orders(client, auth, app_services)

    response = await client.get(f"/api/v1/admin/events/{event.id}/report", headers=auth.admin())

    assert response.status_code == 200, response.text
    report = response.json()
    totals = report["totals"]
    expected = await database_totals(app_services, event.id)
    assert (
        totals["orders"],
        totals["units"],
        totals["paid_orders"],
        totals["paid_units"],
        totals["cancelled_orders"],
        totals["refunded_orders"],
        totals["pending_orders"],
        Decimal(totals["gmv"]),
        totals["buyers"],
    ) == (
        expected["orders"],
        expected["units"],
        expected["paid_orders"],
        expected["paid_units"],
        expected["cancelled_orders"],
        expected["refunded_orders"],
        expected["pending"],
        expected["gmv"],
        expected["buyers"],
    )
    assert (totals["orders"], totals["units"], Decimal(totals["gmv"])) == (
        5,
        11,
        Decimal("239.60"),
    )
    assert totals["participants"] == 4
    assert totals["conversion"] == 1.0
    assert Decimal(totals["average_order_value"]) == Decimal("119.80")
    assert Decimal(totals["refunded_amount"]) == Decimal("100.00")
    first_sale = datetime.fromisoformat(totals["first_sale_at"])
    assert totals["time_to_first_sale_seconds"] == seconds_between(first_sale, event.starts_at)
    phone, buds = report["items"]
    sold_out = datetime.fromisoformat(phone["sold_out_at"])
    assert phone["sell_out_seconds"] == seconds_between(sold_out, event.starts_at)
    assert buds["sold_out_at"] is None
    assert sum(p["units"] for p in report["series"]) == totals["units"]
    assert sum(Decimal(p["gmv"]) for p in report["series"]) == Decimal(totals["gmv"])


async def test_report_csv_rows_per_item_and_a_total(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await sale_with_orders(client, auth, app_services)

    response = await client.get(
        f"/api/v1/admin/events/{event.id}/report",
        params={"format": "csv"},
        headers=auth.admin(),
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["item_id"] for r in rows] == [str(i.id) for i in event.items] + ["all"]
    assert rows[-1]["units"] == "11"
    assert rows[-1]["gmv"] == "239.60"
    assert sum(int(r["units"]) for r in rows[:-1]) == 11


async def test_report_png_is_a_valid_image_of_the_expected_size(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await sale_with_orders(client, auth, app_services)

    response = await client.get(f"/api/v1/admin/events/{event.id}/report.png", headers=auth.admin())

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    png = response.content
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (1000, 500)


# Names an operator may type: mathtext to matplotlib, formulas to a spreadsheet, line
# breaks to a CSV reader. Each, and its cell in the report's CSV: a formula as text.
AWKWARD_NAMES = {
    "Buy 2 for $5 only $9": "Buy 2 for $5 only $9",
    "$$": "$$",
    r"a\$b$": r"a\$b$",
    '=HYPERLINK("http://x.example","x")': '\'=HYPERLINK("http://x.example","x")',
    "+1+2": "'+1+2",
    "-3": "'-3",
    "@SUM(A1)": "'@SUM(A1)",
    "\tTabbed": "'\tTabbed",
    "\rreturn first": "'\rreturn first",
    "bare\rreturn": "bare\rreturn",
    "line\nfeed": "line\nfeed",
    'say "cheese", twice': 'say "cheese", twice',
}


async def awkward_sale(client: httpx.AsyncClient, auth: Auth) -> EventRead:
    return await create_event(
        client,
        auth,
        name="=Weekend $ deals",
        items=[item_spec(sku=f"S{n}", name=name) for n, name in enumerate(AWKWARD_NAMES)],
    )


async def test_report_png_draws_dollar_signs_as_written(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    event = await awkward_sale(client, auth)
    await bought(client, auth, event.items[0].id)

    response = await client.get(f"/api/v1/admin/events/{event.id}/report.png", headers=auth.admin())

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content[:8] == b"\x89PNG\r\n\x1a\n"


async def test_report_csv_cells_are_text_and_rows_stay_whole(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    event = await awkward_sale(client, auth)

    response = await client.get(
        f"/api/v1/admin/events/{event.id}/report", params={"format": "csv"}, headers=auth.admin()
    )

    assert response.status_code == 200
    # A bare CR left unquoted would end the row there: the ids and names would not match.
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    assert [r["item_id"] for r in rows] == [str(i.id) for i in event.items] + ["all"]
    assert [r["name"] for r in rows] == [AWKWARD_NAMES[i.name] for i in event.items] + [
        "'=Weekend $ deals"
    ]


async def test_report_of_an_event_without_orders(client: httpx.AsyncClient, auth: Auth) -> None:
    event = await create_event(client, auth)

    report = (
        await client.get(f"/api/v1/admin/events/{event.id}/report", headers=auth.admin())
    ).json()
    png = await client.get(f"/api/v1/admin/events/{event.id}/report.png", headers=auth.admin())

    assert report["totals"]["orders"] == 0
    assert report["totals"]["average_order_value"] is None
    assert report["totals"]["participants"] is None
    assert report["series"] == []
    assert png.status_code == 200


async def test_report_compares_with_an_earlier_event(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    earlier = await create_event(client, auth, items=[item_spec(sku="OLD", stock=10)])
    await bought(client, auth, earlier.items[0].id, user_id="x", quantity=2)
    await store_orders(app_services)
    event = await sale_with_orders(client, auth, app_services)

    report = (
        await client.get(
            f"/api/v1/admin/events/{event.id}/report",
            params={"compare": earlier.id},
            headers=auth.admin(),
        )
    ).json()

    compared = report["compared_with"]
    assert compared["event_id"] == earlier.id
    assert compared["totals"]["units"] == 2
    assert compared["change"]["units"] == pytest.approx(11 / 2 - 1)
    assert compared["change"]["gmv"] is None  # nothing paid before: no ratio


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v1/admin/events/999999/report", {}, 404, "not_found"),
        ("/api/v1/admin/events/999999/report.png", {}, 404, "not_found"),
        ("/api/v1/admin/events/1/report", {"format": "xml"}, 422, "validation_error"),
        ("/api/v1/admin/events/1/report", {"compare": "0"}, 422, "validation_error"),
        ("/api/v1/admin/events/1/report", {"compare": "999999"}, 404, "not_found"),
        ("/api/v1/admin/events/0/report", {}, 422, "validation_error"),
    ],
)
async def test_bad_report_requests(
    client: httpx.AsyncClient,
    auth: Auth,
    path: str,
    params: dict[str, str],
    status: int,
    code: str,
) -> None:
    await create_event(client, auth)

    assert_problem(await client.get(path, params=params, headers=auth.admin()), status, code)


async def test_report_is_for_operators(client: httpx.AsyncClient, auth: Auth) -> None:
    event = await create_event(client, auth)

    assert_problem(
        await client.get(f"/api/v1/admin/events/{event.id}/report", headers=auth.headers()),
        403,
        "forbidden",
    )


async def test_seckill_report_writes_json_csv_and_png(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, tmp_path: Path
) -> None:
    earlier = await create_event(client, auth, items=[item_spec(sku="OLD", stock=10)])
    event = await sale_with_orders(client, auth, app_services)
    out = tmp_path / "out"
    log = tmp_path / "cli.log"

    process = await start_cli(
        app_services.settings,
        "report",
        str(event.id),
        "--out",
        str(out),
        "--compare",
        str(earlier.id),
        log=log,
    )

    assert await process.wait() == 0, log.read_text()
    written = json.loads((out / f"event-{event.id}.json").read_text())
    api = (await client.get(f"/api/v1/admin/events/{event.id}/report", headers=auth.admin())).json()
    assert written["totals"] == api["totals"]
    assert written["compared_with"]["event_id"] == earlier.id
    assert (out / f"event-{event.id}.csv").read_text().startswith("item_id,sku,")
    assert (out / f"event-{event.id}.png").read_bytes()[:4] == b"\x89PNG"

    missing = await start_cli(app_services.settings, "report", "999999", log=log)
    assert await missing.wait() == 2
    assert "No event 999999." in log.read_text()
