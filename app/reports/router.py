from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.auth import AdminUser
from app.campaigns.errors import CampaignNotFound
from app.container import ContainerDep
from app.db import SessionDep
from app.errors import Forbidden, Unauthorized, problem_responses
from app.events.errors import EventNotFound
from app.ids import MAX_ID, CampaignId, EventId
from app.lottery.errors import LotteryNotFound
from app.reports import campaign_service, lottery_service, service
from app.reports.campaign_schemas import CampaignReport
from app.reports.lottery_schemas import LotteryReport
from app.reports.schemas import EventReport

router = APIRouter(prefix="/api/v1/admin/events", tags=["reports (admin)"])
PROBLEMS = problem_responses(Unauthorized, Forbidden, EventNotFound)
OtherEvent = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="An earlier event to compare with.")
]
campaigns = APIRouter(prefix="/api/v1/admin/campaigns", tags=["reports (admin)"])
lotteries = APIRouter(prefix="/api/v1/admin/lotteries", tags=["reports (admin)"])
LotteryId = Annotated[int, Path(ge=1, le=MAX_ID)]
CAMPAIGN_PROBLEMS = problem_responses(Unauthorized, Forbidden, CampaignNotFound)


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


@router.get(
    "/{event_id}/report",
    response_model=EventReport,
    responses={
        200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with ?format=csv"},
        **PROBLEMS,
    },
)
async def report(
    event_id: EventId,
    session: SessionDep,
    services: ContainerDep,
    _: AdminUser,
    format: ReportFormat = ReportFormat.JSON,
    compare: OtherEvent = None,
) -> EventReport | Response:
    """The sale's report, from Postgres exactly: totals (participants, orders, units,
    paid, cancelled, timed out, refunded, GMV, conversion, average order value, time to
    first sale), per item (sell-out time) and a per-minute series; `?format=csv`: one row
    per item and a total row; `?compare=`: an earlier event's totals and the change."""
    built = await service.build_report(
        session=session, services=services, event_id=event_id, compare_with=compare
    )
    if format is ReportFormat.CSV:
        return Response(
            service.report_csv(built),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="event-{event_id}.csv"'},
        )
    return built


@router.get(
    "/{event_id}/report.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "the chart"}, **PROBLEMS},
)
async def report_png(
    event_id: EventId, session: SessionDep, services: ContainerDep, _: AdminUser
) -> Response:
    """Units sold per item, cumulative, over the sale (to the last sale of a sell-out)
    in buckets fitted to its span, sell-out marked (1000×500 PNG)."""
    built = await service.build_report(session=session, services=services, event_id=event_id)
    png = await service.report_chart(session=session, report=built)
    return Response(png, media_type="image/png")


@campaigns.get(
    "/{campaign_id}/report",
    response_model=CampaignReport,
    responses={
        200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with ?format=csv"},
        **CAMPAIGN_PROBLEMS,
    },
)
async def campaign_report(
    campaign_id: CampaignId,
    session: SessionDep,
    _: AdminUser,
    format: ReportFormat = ReportFormat.JSON,
) -> CampaignReport | Response:
    """The campaign's report over its orders (its events' orders, and regular orders that
    used its coupons or promotions), from Postgres exactly: orders, units, paid orders,
    GMV, average order value, new buyers; the same by phase and by channel (with each
    channel's cost and ROI); progress to each target; the baseline campaign's figures
    and the change; cumulative paid GMV over time. `?format=csv`: one figure a row."""
    built = await campaign_service.build_campaign_report(session=session, campaign_id=campaign_id)
    if format is ReportFormat.CSV:
        return Response(
            campaign_service.campaign_csv(built),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="campaign-{campaign_id}.csv"'},
        )
    return built


@campaigns.get(
    "/{campaign_id}/report.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "the chart"},
        **CAMPAIGN_PROBLEMS,
    },
)
async def campaign_report_png(
    campaign_id: CampaignId, session: SessionDep, _: AdminUser
) -> Response:
    """Paid GMV, cumulative, over the campaign against its GMV target, its phases shaded
    (1000×500 PNG)."""
    built = await campaign_service.build_campaign_report(session=session, campaign_id=campaign_id)
    return Response(await campaign_service.campaign_chart(built), media_type="image/png")


@lotteries.get(
    "/{lottery_id}/report",
    response_model=LotteryReport,
    responses={
        200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with ?format=csv"},
        **problem_responses(Unauthorized, Forbidden, LotteryNotFound),
    },
)
async def lottery_report(
    lottery_id: LotteryId,
    session: SessionDep,
    _: AdminUser,
    format: ReportFormat = ReportFormat.JSON,
) -> LotteryReport | Response:
    """The lottery's report: draws, drawers, wins and win rate, and per prize its
    quantity, wins, what remains, what was paid and what waits for an operator's
    approval; `?format=csv`: one row per prize and a total row."""
    built = await lottery_service.build_lottery_report(session=session, lottery_id=lottery_id)
    if format is ReportFormat.CSV:
        return Response(
            lottery_service.lottery_report_csv(built),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="lottery-{lottery_id}.csv"'},
        )
    return built
