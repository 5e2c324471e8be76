from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.auth import AdminUser, CurrentUser
from app.container import ContainerDep
from app.db import SessionDep
from app.errors import Forbidden, InvalidState, ValidationFailed, problem_responses
from app.gateways.payment import PaymentDeclined
from app.ids import ORDER_ID_PATH, OrderId
from app.orders.errors import CHANGE_PROBLEMS, OrderNotFound
from app.orders.schemas import OrderRead
from app.payments import service
from app.payments.errors import AmountMismatch, InvalidSignature
from app.payments.schemas import NotificationAck, PaymentCreate, PaymentNotification
from app.payments.signatures import SIGNATURE_HEADER, is_valid

router = APIRouter(prefix="/api/v1/payments", tags=["payments"])
# Paying and refunding an order: under the orders' paths, in the payments domain.
orders = APIRouter(prefix="/api/v1/orders", tags=["orders"])
orders_admin = APIRouter(prefix="/api/v1/admin/orders", tags=["orders (admin)"])


@router.post(
    "/callback",
    responses=problem_responses(
        InvalidSignature, OrderNotFound, InvalidState, AmountMismatch, ValidationFailed
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PaymentNotification.model_json_schema()}},
        }
    },
)
async def payment_callback(
    request: Request,
    session: SessionDep,
    services: ContainerDep,
    signature: Annotated[
        str | None,
        Header(
            alias=SIGNATURE_HEADER,
            description="`sha256=<hex>`: HMAC-SHA256 of the raw body under "
            "SECKILL_PAYMENT_WEBHOOK_SECRET.",
        ),
    ] = None,
) -> NotificationAck:
    """The payment gateway's asynchronous notification that a charge settled.

    Authenticated by its signature over the raw body (401 `invalid_signature` otherwise)
    and idempotent: the same notification twice answers `duplicate` and changes nothing.
    409 `amount_mismatch` if the amount is not the order's (nothing recorded); 409
    `invalid_state` if the order can no longer be paid (the charge is refunded through
    the gateway) or is still queued (retry after `Retry-After` seconds)."""
    body = await request.body()
    secret = services.settings.payment_webhook_secret.get_secret_value()
    if not is_valid(secret, body, signature):
        raise InvalidSignature(f"{SIGNATURE_HEADER} does not match the body.")
    try:
        notification = PaymentNotification.model_validate_json(body)
    except ValidationError as exc:
        # Read from the raw body (it had to be verified first), so FastAPI did not
        # validate it: answer the same 422 it would have.
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from exc
    outcome = await service.record_notification(
        session=session, services=services, notification=notification
    )
    return NotificationAck(outcome=outcome)


@orders.post(
    f"/{ORDER_ID_PATH}/pay",
    responses=problem_responses(*CHANGE_PROBLEMS, PaymentDeclined, ValidationFailed),
)
async def pay_order(
    order_id: OrderId,
    session: SessionDep,
    services: ContainerDep,
    user: CurrentUser,
    body: PaymentCreate | None = None,
) -> OrderRead:
    """Pay your `pending_payment` order through the payment gateway; it becomes `paid`.

    409 `invalid_state` if the order is not payable: still `queued` (retry after the
    `Retry-After` seconds), already paid, or cancelled (for instance by the payment
    timeout; a charge that raced the timeout is given back)."""
    paid = await service.pay(
        session=session,
        services=services,
        user=user,
        order_id=order_id,
        payment_token=(body or PaymentCreate()).payment_token,
    )
    return OrderRead.model_validate(paid)


@orders_admin.post(
    f"/{ORDER_ID_PATH}/refund", responses=problem_responses(*CHANGE_PROBLEMS, Forbidden)
)
async def refund_order(
    order_id: OrderId, session: SessionDep, services: ContainerDep, user: AdminUser
) -> OrderRead:
    """Refund a `paid` order through the payment gateway (operators); it becomes
    `refunded` and its units come back as for a cancellation."""
    refunded = await service.refund(
        session=session, services=services, user=user, order_id=order_id
    )
    return OrderRead.model_validate(refunded)
