"""The report's chart: cumulative units per item in buckets fitted to the sale's span
(tenths of a second for a sell-out in seconds, minutes for a long sale), HH:MM:SS time
labels, and every item visible when two items sell alike."""

import re
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import text

from app.container import Container
from app.events.schemas import EventRead
from app.reports import chart, service
from app.reports.schemas import EventReport, Timeline
from tests.support.factories import Auth, create_event, item_spec
from tests.support.lifecycle import bought, store_orders

TIME_LABEL = re.compile(r"^\d\d:\d\d:\d\d(\.\d)?$")


async def sold_at(services: Container, event: EventRead, every: timedelta) -> None:
    """Move each item's orders to the sale's start plus 0, 1, 2, ... times `every`."""
    async with services.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                """
                UPDATE orders AS o
                SET accepted_at = CAST(:start AS timestamptz) + n.rank * CAST(:every AS interval)
                FROM (SELECT id, row_number() OVER (PARTITION BY item_id ORDER BY id) - 1
                          AS rank
                      FROM orders WHERE event_id = :event_id) AS n
                WHERE o.id = n.id
                """
            ),
            {"start": event.starts_at, "every": every, "event_id": event.id},
        )


async def report_and_timeline(services: Container, event_id: int) -> tuple[EventReport, Timeline]:
    async with services.sessionmaker() as session:
        report = await service.build_report(session=session, services=services, event_id=event_id)
        return report, await service.sales_timeline(session=session, report=report)


async def test_a_sell_out_in_seconds_is_drawn_over_those_seconds(
    client: httpx.AsyncClient, auth: Auth, app_services: Container, tmp_path: Path
) -> None:
    """The issue's sale: 10 minutes, sold out in 6 s. By minute it was one step at the
    first tick, and the second item's line hid under the first."""
    event = await create_event(
        client,
        auth,
        starts_in=timedelta(seconds=-60),
        lasts=timedelta(minutes=10),
        items=[
            item_spec(sku="A", name="Phone", stock=20, per_user_limit=1),
            item_spec(sku="B", name="Buds", stock=20, per_user_limit=1),
        ],
    )
    for item in event.items:
        for n in range(20):
            await bought(client, auth, item.id, user_id=f"u{n}")
    await store_orders(app_services)
    await sold_at(app_services, event, timedelta(milliseconds=300))  # the last at 5.7 s

    report, timeline = await report_and_timeline(app_services, event.id)

    # The chart's round step for the span from the start to the last sale (5.7 s): a
    # resolution, not a measured duration.
    assert timeline.bucket_seconds == chart.nice_step(5.7, chart.MAX_BUCKETS)
    assert timeline.moments[0] == event.starts_at
    assert timeline.moments[-1] - event.starts_at < timedelta(seconds=7)
    for item in event.items:
        units = timeline.units[item.id]
        assert len(units) == len(timeline.moments) > 20
        assert units == sorted(units)
        assert (units[0], units[-1]) == (0, 20)
        assert len(set(units)) == 21  # every sale of the 6 seconds is its own step
    figure = chart.draw(report, timeline)
    [axes] = figure.axes
    figure.canvas.draw()
    labels = [t.get_text() for t in axes.get_xticklabels() if t.get_text()]
    assert len(labels) >= 3
    assert all(TIME_LABEL.match(label) for label in labels), labels
    lines = axes.get_lines()[:2]
    assert len({(line.get_linestyle(), line.get_marker()) for line in lines}) == 2
    legend = axes.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == [
        f"#{event.items[0].id} Phone (20 of 20)",
        f"#{event.items[1].id} Buds (20 of 20)",
    ]
    png = await client.get(f"/api/v1/admin/events/{event.id}/report.png", headers=auth.admin())
    assert png.status_code == 200
    (tmp_path / "sell-out.png").write_bytes(png.content)


async def test_a_long_sale_is_drawn_by_minutes_to_now(
    client: httpx.AsyncClient, auth: Auth, app_services: Container
) -> None:
    event = await create_event(
        client,
        auth,
        starts_in=timedelta(hours=-2, minutes=-30),
        lasts=timedelta(hours=6),
        items=[item_spec(stock=50, per_user_limit=1)],
    )
    for n in range(10):
        await bought(client, auth, event.items[0].id, user_id=f"u{n}")
    await store_orders(app_services)
    await sold_at(app_services, event, timedelta(minutes=12))

    report, timeline = await report_and_timeline(app_services, event.id)

    # The chart's round step for the span from the start to now (the report's moment).
    span_to_now = (report.generated_at - event.starts_at).total_seconds()
    assert timeline.bucket_seconds == chart.nice_step(span_to_now, chart.MAX_BUCKETS)
    span = timeline.moments[-1] - timeline.moments[0]
    assert timedelta(hours=2, minutes=29) < span < timedelta(hours=2, minutes=35)  # to now
    assert timeline.units[event.items[0].id][-1] == 10
    figure = chart.draw(report, timeline)
    figure.canvas.draw()
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels() if t.get_text()]
    assert all(re.match(r"^\d\d:\d\d:00$", label) for label in labels), labels


def test_bucket_and_tick_steps_are_round() -> None:
    assert chart.nice_step(6, chart.MAX_BUCKETS) == 0.1
    assert chart.nice_step(600, chart.MAX_BUCKETS) == 5
    assert chart.nice_step(86400, chart.MAX_BUCKETS) == 900
    assert chart.nice_step(30 * 86400, chart.MAX_BUCKETS) == 21600
    assert chart.nice_step(400 * 86400, chart.MAX_BUCKETS) == 4 * 86400
