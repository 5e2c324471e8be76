"""The settlement file and reconciliations (operators)."""

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.auth import AdminUser
from app.container import ContainerDep
from app.db import SessionDep
from app.errors import Forbidden, Unauthorized, ValidationFailed, problem_responses
from app.gateways.settlement import HEADER
from app.ids import ReconciliationId
from app.pagination import PageDep
from app.payments import reconciliation as service
from app.payments.errors import ReconciliationNotFound, UnsupportedSettlementType
from app.payments.schemas import ReconciliationRead, ReconciliationSummary

router = APIRouter(prefix="/api/v1/admin", tags=["reconciliation (admin)"])
AUTH_PROBLEMS = (Unauthorized, Forbidden)
CSV = "text/csv"


@router.get(
    "/payments/settlement",
    response_class=Response,
    responses={
        200: {"content": {CSV: {}}, "description": f"CSV: {','.join(HEADER)}"},
        **problem_responses(*AUTH_PROBLEMS, ValidationFailed),
    },
)
async def settlement_file(
    services: ContainerDep,
    _: AdminUser,
    day: Annotated[
        date, Query(alias="date", description="A business day (SECKILL_BUSINESS_TIMEZONE).")
    ],
) -> Response:
    """The payment gateway's settlement file of one day: every charge and refund whose
    time falls on that day in the business timezone, oldest first."""
    body = await service.settlement_file(services=services, day=day)
    return Response(
        body,
        media_type=f"{CSV}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="settlement-{day}.csv"'},
    )


@router.post(
    "/reconciliations",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(*AUTH_PROBLEMS, ValidationFailed, UnsupportedSettlementType),
    openapi_extra={"requestBody": {"required": True, "content": {CSV: {}}}},
)
async def reconcile(
    request: Request, session: SessionDep, services: ContainerDep, _: AdminUser
) -> ReconciliationRead:
    """Compare a settlement file (`text/csv`, as GET /payments/settlement gives it) with
    the orders and store the result: every charge id missing in the orders, for another
    amount or duplicated, and every order missing in the file. 422 names the first
    malformed line; 415 for another content type. Up to SECKILL_MAX_ADMIN_BODY_BYTES."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != CSV:
        raise UnsupportedSettlementType(
            f"Send the settlement file as {CSV}, not {content_type or 'nothing'!r}."
        )
    result = await service.reconcile(
        session=session, services=services, data=await request.body(), source="api"
    )
    return ReconciliationRead.model_validate(result)


@router.get("/reconciliations", responses=problem_responses(*AUTH_PROBLEMS))
async def list_reconciliations(
    session: SessionDep, _: AdminUser, page: PageDep
) -> list[ReconciliationSummary]:
    """Reconciliations, newest first (counts only; GET one for its lists)."""
    rows = await service.page(session=session, limit=page.limit, offset=page.offset)
    return [ReconciliationSummary.model_validate(r) for r in rows]


@router.get(
    "/reconciliations/{reconciliation_id}",
    responses=problem_responses(*AUTH_PROBLEMS, ReconciliationNotFound),
)
async def get_reconciliation(
    reconciliation_id: ReconciliationId, session: SessionDep, _: AdminUser
) -> ReconciliationRead:
    """One reconciliation with every id it names."""
    found = await service.get(session=session, reconciliation_id=reconciliation_id)
    return ReconciliationRead.model_validate(found)
