"""Returns and refunds in the sale and campaign reports: `returns_by_reason` (every reason)
and `refund_rate` (refunded / ever paid), in the JSON and the CSV."""

import csv
import io

import httpx
from sqlalchemy import insert

from app.container import Container
from app.returns.models import OrderReturn
from tests.reports.campaign_data import double_eleven
from tests.support.factories import Auth, create_event, item_spec
from tests.support.lifecycle import stored_order
from tests.support.payments import paid_order, refund
from tests.support.returns import approve, reject, requested_return

NONE = {"damaged": 0, "wrong_item": 0, "not_as_described": 0, "changed_mind": 0, "other": 0}


async def _report(
    client: httpx.AsyncClient, auth: Auth, event_id: int, **params: str
) -> httpx.Response:
    response = await client.get(
        f"/api/v1/admin/events/{event_id}/report", headers=auth.admin(), params=params
    )
    assert response.status_code == 200, response.text
    return response


async def test_the_sale_report_counts_returns_and_the_refund_rate(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_event(
        client,
        auth,
        items=[
            item_spec(sku="REP-1", stock=20, per_user_limit=10),
            item_spec(sku="REP-2", name="Case", stock=20, per_user_limit=10),
        ],
    )
    first, second = (item.id for item in event.items)
    empty = (await _report(client, auth, event.id)).json()
    assert (empty["returns_by_reason"], empty["refund_rate"]) == (NONE, None)

    # Four orders paid (one more pending): one returned and approved, one returned and
    # rejected, one refunded by an operator, one kept.
    await stored_order(client, auth, app_services, first, user_id="pending")
    approved = await paid_order(client, auth, app_services, first)
    rejected = await paid_order(client, auth, app_services, first)
    refunded = await paid_order(client, auth, app_services, second)
    await paid_order(client, auth, app_services, second)
    one = await requested_return(client, auth, approved, reason="damaged")
    assert (await approve(client, auth, one)).status_code == 200
    two = await requested_return(client, auth, rejected, reason="changed_mind")
    assert (await reject(client, auth, two)).status_code == 200
    await requested_return(client, auth, rejected, reason="damaged")  # asked again
    assert (await refund(client, auth.admin(), refunded)).status_code == 200

    report = (await _report(client, auth, event.id)).json()

    assert report["returns_by_reason"] == {**NONE, "damaged": 2, "changed_mind": 1}
    assert report["refund_rate"] == 0.5  # 2 refunded of 4 ever paid
    phone, case = report["items"]
    assert (phone["returns_by_reason"], phone["refund_rate"]) == (
        {**NONE, "damaged": 2, "changed_mind": 1},
        0.5,
    )
    assert (case["returns_by_reason"], case["refund_rate"]) == (NONE, 0.5)

    rows = list(
        csv.DictReader(io.StringIO((await _report(client, auth, event.id, format="csv")).text))
    )
    total = rows[-1]
    assert total["item_id"] == "all"
    assert total["refund_rate"] == "0.5"
    assert (total["returns_damaged"], total["returns_changed_mind"], total["returns_other"]) == (
        "2",
        "1",
        "0",
    )
    assert [r["returns_damaged"] for r in rows[:-1]] == ["2", "0"]


async def test_the_campaign_report_counts_returns_and_the_refund_rate(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    built = await double_eleven(app_services.sessionmaker)
    refunded, first = built.orders[5], built.orders[0]
    async with app_services.sessionmaker() as session, session.begin():
        for order, reason, status, why in (
            (refunded, "damaged", "approved", None),
            (first, "other", "rejected", "worn"),
            (first, "changed_mind", "requested", None),
        ):
            await session.execute(
                insert(OrderReturn).values(
                    order_id=order.id,
                    user_id=order.user_id,
                    campaign_id=built.campaign_id,
                    reason=reason,
                    status=status,
                    rejection_reason=why,
                )
            )

    url = f"/api/v1/admin/campaigns/{built.campaign_id}/report"
    report = (await client.get(url, headers=auth.admin())).json()

    assert report["returns_by_reason"] == {**NONE, "damaged": 1, "other": 1, "changed_mind": 1}
    assert report["refund_rate"] == 0.125  # 1 refunded of 8 ever paid
    baseline = (
        await client.get(
            f"/api/v1/admin/campaigns/{built.baseline_id}/report", headers=auth.admin()
        )
    ).json()
    assert (baseline["returns_by_reason"], baseline["refund_rate"]) == (NONE, 0.0)

    response = await client.get(url, headers=auth.admin(), params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    cells = {(r["section"], r["name"], r["metric"]): r["value"] for r in rows}
    assert cells[("campaign", "Double 11, 2026", "refund_rate")] == "0.125"
    assert cells[("returns", "damaged", "returns")] == "1"
    assert cells[("returns", "wrong_item", "returns")] == "0"
