from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import AdminUser, CurrentUser, User
from app.container import Container, ContainerDep
from app.coupons.errors import CouponNotApplicable
from app.db import SessionDep
from app.errors import (
    Forbidden,
    RateLimited,
    Recovering,
    Unauthorized,
    ValidationFailed,
    problem_responses,
)
from app.ids import MAX_ID, ORDER_ID_PATH, IdempotencyKey, OrderId
from app.inventory.errors import InsufficientStock
from app.moments import utc_now
from app.orders import checkout, service, shipping
from app.orders.errors import CHANGE_PROBLEMS, OrderNotFound
from app.orders.models import OrderStatus, TransitionCause
from app.orders.schemas import (
    CheckoutCreate,
    OrderRead,
    OverdueShipmentRead,
    QuoteRead,
    ShipmentCreate,
)
from app.pagination import NEXT_CURSOR_HEADER, CursorPageDep, PageDep
from app.ratelimit.service import CheckingOutUser, QuotingUser

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])
admin = APIRouter(prefix="/api/v1/admin/orders", tags=["orders (admin)"])
shipments = APIRouter(prefix="/api/v1/admin/shipments", tags=["orders (admin)"])
# The pay and refund routes are the payments domain's (app/payments/router.py).


@router.get("", responses=problem_responses(Unauthorized))
async def list_orders(
    session: SessionDep, services: ContainerDep, user: CurrentUser, page: PageDep
) -> list[OrderRead]:
    """The caller's orders, newest first, including orders accepted a moment ago and still
    `queued` (not yet stored by the order writer)."""
    return await service.list_orders(
        session=session, services=services, user=user, limit=page.limit, offset=page.offset
    )


@router.post(
    "/quote",
    responses=problem_responses(
        Unauthorized, CouponNotApplicable, ValidationFailed, RateLimited, Recovering
    ),
)
async def quote_order(
    data: CheckoutCreate, session: SessionDep, services: ContainerDep, user: QuotingUser
) -> QuoteRead:
    """Price SKUs at their regular price with at most one coupon (a claimed coupon's
    `id`), else the daily promotion the order would take now (`promotion`); nothing is
    taken. A coupon that does not apply: 422 `coupon_not_applicable` with the reason in
    `detail` (and `reason`)."""
    return await checkout.quote(
        session=session, services=services, user=user, data=data, now=utc_now()
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(
        Unauthorized,
        CouponNotApplicable,
        InsufficientStock,
        ValidationFailed,
        RateLimited,
        Recovering,
    ),
)
async def place_order(
    data: CheckoutCreate,
    session: SessionDep,
    services: ContainerDep,
    user: CheckingOutUser,
    idempotency_key: Annotated[IdempotencyKey | None, Header(alias="Idempotency-Key")] = None,
    channel: Annotated[str | None, Header(alias="X-Channel")] = None,
) -> OrderRead:
    """Regular checkout: the order (`pending_payment`) takes the SKUs' on-hand stock and
    uses the coupon, all or nothing; without a coupon, it takes the daily promotion it
    qualifies for while the day's first places last (`promotion`). Cancel and payment
    timeout give all of it back.

    With an `Idempotency-Key`, repeating the request returns the first order and takes
    nothing more. `X-Channel`: the channel the order came through (`channel`)."""
    order, _new = await checkout.place_order(
        session=session,
        services=services,
        user=user,
        data=data,
        idempotency_key=idempotency_key,
        channel=channel,
        now=utc_now(),
    )
    return OrderRead.model_validate(order)


@router.get(f"/{ORDER_ID_PATH}", responses=problem_responses(Unauthorized, OrderNotFound))
async def get_order(
    order_id: OrderId, session: SessionDep, services: ContainerDep, user: CurrentUser
) -> OrderRead:
    """`queued` until the order writer stores the order, then its stored status."""
    return await service.get_order(session=session, services=services, user=user, order_id=order_id)


async def _cancel(
    order_id: str, session: AsyncSession, services: Container, user: User, cause: TransitionCause
) -> OrderRead:
    cancelled = await service.cancel(
        session=session, services=services, user=user, order_id=order_id, cause=cause
    )
    return OrderRead.model_validate(cancelled)


@router.post(f"/{ORDER_ID_PATH}/cancel", responses=problem_responses(*CHANGE_PROBLEMS))
async def cancel_order(
    order_id: OrderId, session: SessionDep, services: ContainerDep, user: CurrentUser
) -> OrderRead:
    """Cancel your `pending_payment` order; its units go back on sale (or, once the sale
    has ended, back to the warehouse) and count no more against your per-user limit.

    409 `invalid_state` if the order is still `queued` (retry after `Retry-After`
    seconds) or is no longer `pending_payment`."""
    return await _cancel(order_id, session, services, user, TransitionCause.USER_CANCEL)


@admin.post(f"/{ORDER_ID_PATH}/cancel", responses=problem_responses(*CHANGE_PROBLEMS, Forbidden))
async def cancel_any_order(
    order_id: OrderId, session: SessionDep, services: ContainerDep, user: AdminUser
) -> OrderRead:
    """Cancel any `pending_payment` order (operators); the stock comes back as for a
    shopper's cancellation."""
    return await _cancel(order_id, session, services, user, TransitionCause.OPERATOR_CANCEL)


@admin.get("", responses=problem_responses(Unauthorized, Forbidden, ValidationFailed))
async def list_all_orders(
    session: SessionDep,
    _: AdminUser,
    page: CursorPageDep,
    response: Response,
    event_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    item_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    user_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    status: Annotated[
        OrderStatus | None, Query(description="A stored status (not `queued`).")
    ] = None,
) -> list[OrderRead]:
    """Stored orders (operators), newest first, filtered by event, item, user and status;
    more pages: send the `X-Next-Cursor` header back as `cursor`."""
    found = await service.list_all_orders(
        session=session,
        event_id=event_id,
        item_id=item_id,
        user_id=user_id,
        status=status,
        cursor=page.cursor,
        limit=page.limit,
    )
    if found.next_cursor is not None:
        response.headers[NEXT_CURSOR_HEADER] = found.next_cursor
    return found.orders


@admin.post(
    f"/{ORDER_ID_PATH}/ship",
    responses=problem_responses(*CHANGE_PROBLEMS, Forbidden, ValidationFailed),
)
async def ship_order(
    order_id: OrderId,
    data: ShipmentCreate,
    session: SessionDep,
    services: ContainerDep,
    user: AdminUser,
) -> OrderRead:
    """Hand a `paid` order to a carrier: it becomes `shipped`, with its carrier and
    tracking number. Shipping it again with the same carrier and tracking number answers
    the shipped order; anything else that is not `paid`: 409 `invalid_state`."""
    shipped = await shipping.ship(
        session=session, services=services, user=user, order_id=order_id, data=data
    )
    return OrderRead.model_validate(shipped)


@shipments.get("/overdue", responses=problem_responses(Unauthorized, Forbidden))
async def list_overdue_shipments(
    session: SessionDep, _: AdminUser, page: PageDep
) -> list[OverdueShipmentRead]:
    """Paid orders not shipped by their event's ship-by (`ship_within_days` working days
    after the sale's end), the most overdue first. Regular-checkout orders have no
    ship-by and are never listed."""
    return await shipping.overdue(
        session=session, now=utc_now(), limit=page.limit, offset=page.offset
    )
