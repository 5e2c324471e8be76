"""Building a campaign's report from Postgres: totals, phases, channels (with their
cost and ROI), targets, the baseline campaign's figures and a GMV series, as JSON, CSV
and a PNG chart. Counts and money are the sale report's (app/reports/service.py)."""

import asyncio
import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns import service as campaigns
from app.campaigns.models import Campaign, CampaignStatus, Phase
from app.members.stats import members_report
from app.reports import campaign_repository as repository
from app.reports import chart
from app.reports.campaign_repository import OUTSIDE, PhaseWindow, SegmentRow
from app.reports.campaign_schemas import (
    Baseline,
    CampaignReport,
    ChannelFigures,
    CountChange,
    CountTarget,
    Figures,
    GmvPoint,
    GmvSeries,
    MoneyChange,
    MoneyTarget,
    TargetsProgress,
)
from app.reports.service import CENT, average_order_value, change, csv_cell, ratio
from app.returns.models import ReturnReason
from app.returns.stats import after_sales

# Where the CSV puts the orders that came without a channel (JSON: null). Not a code a
# campaign could list: codes are lower-case letters, digits and `_.-`.
NO_CHANNEL = "(none)"
PHASES = (*(p.value for p in Phase), OUTSIDE)


@dataclass(frozen=True, slots=True)
class _Summary:
    totals: Figures
    new_buyers: int


def _windows(campaign: Campaign) -> list[PhaseWindow]:
    windows = []
    for phase in Phase:
        window = campaigns.phase_window(campaign, phase)
        if window is not None:
            windows.append(PhaseWindow(phase=phase.value, starts_at=window[0], ends_at=window[1]))
    return windows


def _span(campaign: Campaign) -> tuple[datetime, datetime] | None:
    """From the first phase's start to the last one's end."""
    windows = _windows(campaign)
    if not windows:
        return None
    return min(w.starts_at for w in windows), max(w.ends_at for w in windows)


def _figures(rows: Sequence[SegmentRow]) -> Figures:
    gmv = sum((row.gmv for row in rows), Decimal(0)).quantize(CENT)
    paid_orders = sum(row.paid_orders for row in rows)
    return Figures(
        orders=sum(row.orders for row in rows),
        units=sum(row.units for row in rows),
        paid_orders=paid_orders,
        gmv=gmv,
        aov=average_order_value(gmv, paid_orders),
    )


def _channels(campaign: Campaign, rows: Sequence[SegmentRow]) -> list[ChannelFigures]:
    """The listed channels (orders or not), then any other code recorded (`other`, or a
    code since dropped from the list), then the orders without a channel."""
    costs = {c.code: c.cost for c in campaign.channels}
    recorded = {row.channel for row in rows}
    unlisted = sorted(code for code in recorded if code is not None and code not in costs)
    codes: list[str | None] = [*costs, *unlisted]
    if None in recorded:
        codes.append(None)
    channels = []
    for code in codes:
        figures = _figures([row for row in rows if row.channel == code])
        cost = costs.get(code) if code is not None else None
        channels.append(
            ChannelFigures(
                **figures.model_dump(),
                channel=code,
                cost=cost,
                roi=None if cost is None else ratio(float(figures.gmv), float(cost)),
            )
        )
    return channels


async def _summary(session: AsyncSession, campaign: Campaign) -> tuple[_Summary, list[SegmentRow]]:
    rows = await repository.segments(session, campaign.id, _windows(campaign))
    new_buyers = await repository.new_buyers(session, campaign.id)
    return _Summary(totals=_figures(rows), new_buyers=new_buyers), rows


def _count_target(target: int | None, actual: int) -> CountTarget | None:
    if target is None:
        return None
    return CountTarget(target=target, actual=actual, completion=ratio(actual, target))


def _targets(campaign: Campaign, summary: _Summary) -> TargetsProgress:
    gmv = summary.totals.gmv
    return TargetsProgress(
        gmv=None
        if campaign.target_gmv is None
        else MoneyTarget(
            target=campaign.target_gmv,
            actual=gmv,
            completion=ratio(float(gmv), float(campaign.target_gmv)),
        ),
        orders=_count_target(campaign.target_orders, summary.totals.orders),
        new_buyers=_count_target(campaign.target_new_buyers, summary.new_buyers),
    )


def _baseline(other: Campaign, mine: _Summary, theirs: _Summary) -> Baseline:
    def counted(this: int, that: int) -> CountChange:
        return CountChange(value=that, change=change(this, that))

    def money(this: Decimal | None, that: Decimal | None) -> MoneyChange:
        return MoneyChange(value=that, change=change(this, that))

    t, b = mine.totals, theirs.totals
    return Baseline(
        campaign_id=other.id,
        name=other.name,
        orders=counted(t.orders, b.orders),
        units=counted(t.units, b.units),
        paid_orders=counted(t.paid_orders, b.paid_orders),
        gmv=money(t.gmv, b.gmv),
        aov=money(t.aov, b.aov),
        new_buyers=counted(mine.new_buyers, theirs.new_buyers),
    )


def _chart_window(
    campaign: Campaign, now: datetime, first: datetime | None, last: datetime | None
) -> tuple[datetime, datetime]:
    """From the first phase's start to the last one's end (to now while the campaign
    runs), widened to its first and last orders (one accepted outside every phase)."""
    windows = _windows(campaign)
    origin, end = windows[0].starts_at, windows[-1].ends_at
    until = min(end, now) if now > origin else end
    origin = min(origin, first or origin)
    # Just past the last order: every point counts the orders accepted before it.
    until = max(until, last + timedelta(microseconds=1) if last else until)
    return origin, max(until, origin + timedelta(seconds=1))


async def _series(session: AsyncSession, campaign: Campaign, now: datetime) -> GmvSeries:
    """Cumulative paid GMV over the campaign, in buckets fitted to its span as the sale
    report's chart fits them (hours for a week-long campaign)."""
    first, last = await repository.acceptance_span(session, campaign.id)
    origin, until = _chart_window(campaign, now, first, last)
    span = (until - origin).total_seconds()
    seconds = chart.nice_step(span, chart.MAX_BUCKETS)
    rows = await repository.gmv_per_bucket(session, campaign.id, origin=origin, seconds=seconds)
    count = max([math.ceil(span / seconds), *(row.bucket + 1 for row in rows)])
    gmv, paid = [Decimal(0)] * count, [0] * count
    for row in rows:
        gmv[max(row.bucket, 0)] += row.gmv
        paid[max(row.bucket, 0)] += row.paid_orders
    points = [GmvPoint(at=origin, gmv=Decimal("0.00"), paid_orders=0)]
    for k in range(count):
        points.append(
            GmvPoint(
                # The last bucket's point is `until`, not its whole end (which may lie
                # past year 9999 for a campaign over centuries).
                at=until if k == count - 1 else origin + timedelta(seconds=(k + 1) * seconds),
                gmv=points[-1].gmv + gmv[k],
                paid_orders=points[-1].paid_orders + paid[k],
            )
        )
    return GmvSeries(bucket_seconds=seconds, points=points)


async def build_campaign_report(*, session: AsyncSession, campaign_id: int) -> CampaignReport:
    """The campaign's report (CampaignNotFound for an unknown id)."""
    campaign = await campaigns.get_campaign(session, campaign_id)
    now = datetime.now(UTC)
    summary, rows = await _summary(session, campaign)
    baseline = None
    if campaign.baseline_campaign_id is not None:
        other = await campaigns.get_campaign(session, campaign.baseline_campaign_id)
        theirs, _ = await _summary(session, other)
        baseline = _baseline(other, summary, theirs)
    totals = summary.totals
    shown = campaigns.public_view(campaign, now=now)
    returned = await after_sales(session=session, scope="campaign_id", scope_id=campaign.id)
    return CampaignReport(
        campaign_id=campaign.id,
        name=campaign.name,
        status=CampaignStatus(campaign.status),
        timezone=campaign.timezone,
        phases=shown.phases,
        current_phase=shown.current_phase,
        generated_at=now,
        orders=totals.orders,
        units=totals.units,
        paid_orders=totals.paid_orders,
        gmv=totals.gmv,
        aov=totals.aov,
        new_buyers=summary.new_buyers,
        by_phase={phase: _figures([row for row in rows if row.phase == phase]) for phase in PHASES},
        by_channel=_channels(campaign, rows),
        targets=_targets(campaign, summary),
        baseline=baseline,
        series=await _series(session, campaign, now),
        members=await members_report(
            session=session,
            scope="campaign_id",
            scope_id=campaign.id,
            window=_span(campaign),
        ),
        returns_by_reason=returned.returns_by_reason,
        refund_rate=returned.refund_rate,
    )


async def campaign_chart(report: CampaignReport) -> bytes:
    """The report's PNG, drawn off the event loop."""
    return await asyncio.to_thread(chart.campaign_png, report)


CSV_COLUMNS = ("section", "name", "metric", "value")
FIGURES = ("orders", "units", "paid_orders", "gmv", "aov")


def campaign_csv(report: CampaignReport) -> str:
    """One figure a row (`section`, `name`, `metric`, `value`), ready for a pivot table:
    the campaign's totals (with its refund rate), its returns per reason, each phase's
    and channel's figures, each target's target, actual and completion, and each baseline
    figure's value and change. Empty: none (an average without a paid order, an ROI
    without a cost)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)

    def row(section: str, name: str, metric: str, value: object) -> None:
        writer.writerow([csv_cell(v) for v in (section, name, metric, value)])

    for metric in (*FIGURES, "new_buyers", "refund_rate"):
        row("campaign", report.name, metric, getattr(report, metric))
    for reason in ReturnReason:
        row("returns", reason.value, "returns", report.returns_by_reason[reason])
    for phase, figures in report.by_phase.items():
        for metric in FIGURES:
            row("phase", phase, metric, getattr(figures, metric))
    for channel in report.by_channel:
        for metric in (*FIGURES, "cost", "roi"):
            row("channel", channel.channel or NO_CHANNEL, metric, getattr(channel, metric))
    for name in ("gmv", "orders", "new_buyers"):
        target: MoneyTarget | CountTarget | None = getattr(report.targets, name)
        if target is not None:
            for metric in ("target", "actual", "completion"):
                row("target", name, metric, getattr(target, metric))
    if report.baseline is not None:
        for name in (*FIGURES, "new_buyers"):
            compared: CountChange | MoneyChange = getattr(report.baseline, name)
            row("baseline", name, "value", compared.value)
            row("baseline", name, "change", compared.change)
    return out.getvalue()
