from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.db import SessionDep
from app.errors import InvalidState, ValidationFailed, problem_responses
from app.orders.errors import OrderNotFound
from app.payments import service
from app.payments.errors import AmountMismatch, InvalidSignature
from app.payments.schemas import NotificationAck, PaymentNotification
from app.payments.signatures import SIGNATURE_HEADER, is_valid
from app.state import ServicesDep

router = APIRouter(prefix="/api/v1/payments", tags=["payments"])


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
    services: ServicesDep,
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
    await session.commit()
    return NotificationAck(outcome=outcome)
