import time
from typing import Annotated

from fastapi import APIRouter, Header, status

from app.auth import CurrentUser
from app.errors import Unauthorized, ValidationFailed, problem_responses
from app.events.errors import ItemNotFound
from app.events.router import ItemId
from app.metrics import purchase_seconds
from app.seckill import service
from app.seckill.errors import Ended, LimitExceeded, NotStarted, Paused, SoldOut
from app.seckill.schemas import IdempotencyKey, PurchaseAccepted, PurchaseCreate
from app.state import ServicesDep

router = APIRouter(prefix="/api/v1", tags=["buying"])


@router.post(
    "/items/{item_id}/purchase",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(
        Unauthorized,
        ItemNotFound,
        SoldOut,
        LimitExceeded,
        NotStarted,
        Ended,
        Paused,
        ValidationFailed,
    ),
)
async def purchase(
    item_id: ItemId,
    user: CurrentUser,
    services: ServicesDep,
    body: PurchaseCreate | None = None,
    idempotency_key: Annotated[IdempotencyKey | None, Header(alias="Idempotency-Key")] = None,
) -> PurchaseAccepted:
    """Take stock now and queue the order; the order row reaches Postgres shortly after.

    With an `Idempotency-Key`, repeating the request returns the first answer and takes
    no more stock."""
    started = time.perf_counter()
    try:
        accepted = await service.purchase(
            services=services,
            item_id=item_id,
            user=user,
            quantity=body.quantity if body else 1,
            idempotency_key=idempotency_key,
        )
    finally:
        purchase_seconds.observe(time.perf_counter() - started)
    return PurchaseAccepted(order_id=accepted.order_id)
