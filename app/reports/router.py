from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.auth import AdminUser
from app.container import ContainerDep
from app.db import SessionDep
from app.errors import Forbidden, Unauthorized, problem_responses
from app.events.errors import EventNotFound
from app.ids import MAX_ID, EventId
from app.reports import service
from app.reports.schemas import EventReport

router = APIRouter(prefix="/api/v1/admin/events", tags=["reports (admin)"])
PROBLEMS = problem_responses(Unauthorized, Forbidden, EventNotFound)
OtherEvent = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="An earlier event to compare with.")
]


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
