from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import AdminUser, CurrentUser, User
from app.db import SessionDep
from app.errors import Forbidden, InvalidState, Unauthorized, ValidationFailed, problem_responses
from app.orders import service
from app.orders.errors import OrderNotFound
from app.orders.models import TransitionCause
from app.orders.release import return_stock_or_defer
from app.orders.schemas import OrderRead
from app.pagination import PageDep
from app.payments import service as payments
from app.payments.errors import PaymentDeclined
from app.payments.schemas import PaymentCreate
from app.state import Services, ServicesDep

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])
admin = APIRouter(prefix="/api/v1/admin/orders", tags=["orders (admin)"])
OrderId = Annotated[str, Path(min_length=1, max_length=64)]
# 409 invalid_state covers a still-queued order too (with Retry-After: try again shortly).
CHANGE_PROBLEMS = (Unauthorized, OrderNotFound, InvalidState)


@router.get("", responses=problem_responses(Unauthorized))
async def list_orders(session: SessionDep, user: CurrentUser, page: PageDep) -> list[OrderRead]:
    """The caller's stored orders, newest first (a just-accepted order appears within
    moments, once the order writer has stored it)."""
    return await service.list_orders(
        session=session, user=user, limit=page.limit, offset=page.offset
    )


@router.get("/{order_id}", responses=problem_responses(Unauthorized, OrderNotFound))
async def get_order(
    order_id: OrderId, session: SessionDep, services: ServicesDep, user: CurrentUser
) -> OrderRead:
    """`queued` until the order writer stores the order, then its stored status."""
    return await service.get_order(session=session, services=services, user=user, order_id=order_id)


@router.post(
    "/{order_id}/pay",
    responses=problem_responses(*CHANGE_PROBLEMS, PaymentDeclined, ValidationFailed),
)
async def pay_order(
    order_id: OrderId,
    session: SessionDep,
    services: ServicesDep,
    user: CurrentUser,
    body: PaymentCreate | None = None,
) -> OrderRead:
    """Pay your `pending_payment` order through the payment gateway; it becomes `paid`.

    409 `invalid_state` if the order is not payable: still `queued` (retry after the
    `Retry-After` seconds), already paid, or cancelled (for instance by the payment
    timeout; a charge that raced the timeout is given back)."""
    paid = await payments.pay(
        session=session,
        services=services,
        user=user,
        order_id=order_id,
        payment_token=(body or PaymentCreate()).payment_token,
    )
    await session.commit()
    return OrderRead.model_validate(paid)


async def _cancel(
    order_id: str, session: AsyncSession, services: Services, user: User, cause: TransitionCause
) -> OrderRead:
    cancelled = await service.cancel(
        session=session, services=services, user=user, order_id=order_id, cause=cause
    )
    await session.commit()
    await return_stock_or_defer(services=services, order_ids=[cancelled.id])
    return OrderRead.model_validate(cancelled)


@router.post("/{order_id}/cancel", responses=problem_responses(*CHANGE_PROBLEMS))
async def cancel_order(
    order_id: OrderId, session: SessionDep, services: ServicesDep, user: CurrentUser
) -> OrderRead:
    """Cancel your `pending_payment` order; its units go back on sale (or, once the sale
    has ended, back to the warehouse) and count no more against your per-user limit.

    409 `invalid_state` if the order is still `queued` (retry after `Retry-After`
    seconds) or is no longer `pending_payment`."""
    return await _cancel(order_id, session, services, user, TransitionCause.USER_CANCEL)


@admin.post("/{order_id}/cancel", responses=problem_responses(*CHANGE_PROBLEMS, Forbidden))
async def cancel_any_order(
    order_id: OrderId, session: SessionDep, services: ServicesDep, user: AdminUser
) -> OrderRead:
    """Cancel any `pending_payment` order (operators); the stock comes back as for a
    shopper's cancellation."""
    return await _cancel(order_id, session, services, user, TransitionCause.OPERATOR_CANCEL)


@admin.post("/{order_id}/refund", responses=problem_responses(*CHANGE_PROBLEMS, Forbidden))
async def refund_order(
    order_id: OrderId, session: SessionDep, services: ServicesDep, user: AdminUser
) -> OrderRead:
    """Refund a `paid` order through the payment gateway (operators); it becomes
    `refunded` and its units come back as for a cancellation."""
    refunded = await payments.refund(
        session=session, services=services, user=user, order_id=order_id
    )
    await session.commit()
    await return_stock_or_defer(services=services, order_ids=[refunded.id])
    return OrderRead.model_validate(refunded)
