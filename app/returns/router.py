from typing import Annotated

from fastapi import APIRouter, Query, status

from app.auth import AdminUser, CurrentUser
from app.container import ContainerDep
from app.db import SessionDep
from app.errors import Forbidden, InvalidState, Unauthorized, ValidationFailed, problem_responses
from app.gateways.payment import PaymentDeclined
from app.ids import MAX_ID, ORDER_ID_PATH, OrderId, ReturnId
from app.moments import utc_now
from app.orders.errors import OrderNotFound
from app.pagination import PageDep
from app.returns import service
from app.returns.errors import ReturnNotFound
from app.returns.models import ReturnStatus
from app.returns.schemas import ReturnCreate, ReturnRead, ReturnReject, ReturnRequested

# Asking for a return: under the orders' paths, in the returns domain.
orders = APIRouter(prefix="/api/v1/orders", tags=["returns"])
admin = APIRouter(prefix="/api/v1/admin/returns", tags=["returns (admin)"])

ADMIN_PROBLEMS = (Unauthorized, Forbidden, ReturnNotFound, InvalidState, ValidationFailed)


@orders.post(
    f"/{ORDER_ID_PATH}/returns",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(Unauthorized, OrderNotFound, InvalidState, ValidationFailed),
)
async def request_return(
    order_id: OrderId,
    body: ReturnCreate,
    session: SessionDep,
    services: ContainerDep,
    user: CurrentUser,
) -> ReturnRequested:
    """Ask to return your `paid` (or `shipped`) order, within SECKILL_RETURN_WINDOW_DAYS of
    its payment, for one of the fixed reasons. 409 `invalid_state` for any other order,
    past the window, or while a return of it waits for a decision (after a rejection you
    may ask again within the window)."""
    created = await service.request_return(
        session=session,
        services=services,
        user=user,
        order_id=order_id,
        data=body,
        now=utc_now(),
    )
    return ReturnRequested(id=created.id, status=ReturnStatus(created.status))


@admin.get("", responses=problem_responses(Unauthorized, Forbidden, ValidationFailed))
async def list_returns(
    session: SessionDep,
    _: AdminUser,
    page: PageDep,
    event_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    status: ReturnStatus | None = None,
) -> list[ReturnRead]:
    """Returns, newest first, optionally of one event and in one status."""
    return await service.list_returns(
        session=session, event_id=event_id, status=status, limit=page.limit, offset=page.offset
    )


@admin.post("/{return_id}/approve", responses=problem_responses(*ADMIN_PROBLEMS, PaymentDeclined))
async def approve_return(
    return_id: ReturnId, session: SessionDep, services: ContainerDep, actor: AdminUser
) -> ReturnRead:
    """Approve a `requested` return: the order is refunded through the payment gateway
    (once, however many approvals race), its points taken back, and its units go back to
    the SKU's on-hand stock, never into the sale. 409 `invalid_state` if the return was
    decided already or the order can no longer be refunded."""
    decided = await service.approve(
        session=session, services=services, actor=actor, return_id=return_id, now=utc_now()
    )
    return ReturnRead.model_validate(decided)


@admin.post("/{return_id}/reject", responses=problem_responses(*ADMIN_PROBLEMS))
async def reject_return(
    return_id: ReturnId,
    body: ReturnReject,
    session: SessionDep,
    services: ContainerDep,
    actor: AdminUser,
) -> ReturnRead:
    """Reject a `requested` return with a reason; the order stays as it is."""
    decided = await service.reject(
        session=session,
        services=services,
        actor=actor,
        return_id=return_id,
        reason=body.reason,
        now=utc_now(),
    )
    return ReturnRead.model_validate(decided)
