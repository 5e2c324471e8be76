import time
from typing import Annotated

from fastapi import APIRouter, Header, Request, status

from app.auth import CurrentUser
from app.campaigns.service import channel_code
from app.container import ContainerDep
from app.coupons.errors import CouponNotApplicable
from app.errors import (
    Ended,
    LimitExceeded,
    NotAdmitted,
    NotStarted,
    Paused,
    RateLimited,
    Recovering,
    SoldOut,
    Unauthorized,
    ValidationFailed,
    problem_responses,
)
from app.events.errors import ItemNotFound
from app.ids import IdempotencyKey, ItemId
from app.metrics import purchase_seconds
from app.ratelimit.service import address_of
from app.seckill import service
from app.seckill.schemas import PurchaseAccepted, PurchaseCreate

router = APIRouter(prefix="/api/v1", tags=["buying"])


@router.post(
    "/items/{item_id}/purchase",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(
        Unauthorized,
        ItemNotFound,
        SoldOut,
        LimitExceeded,
        NotAdmitted,
        NotStarted,
        Ended,
        Paused,
        ValidationFailed,
        RateLimited,
        CouponNotApplicable,
        Recovering,
    ),
)
async def purchase(
    request: Request,
    item_id: ItemId,
    user: CurrentUser,
    services: ContainerDep,
    body: PurchaseCreate | None = None,
    idempotency_key: Annotated[IdempotencyKey | None, Header(alias="Idempotency-Key")] = None,
    x_channel: Annotated[
        str | None,
        Header(
            alias="X-Channel",
            description="Where the buyer came from (a code the campaign lists, else "
            "recorded as `other`).",
        ),
    ] = None,
    x_seckill_pass: Annotated[
        str | None,
        Header(
            alias="X-Seckill-Pass",
            description="The pass a queue or draw sale gave you (its purchases need it: "
            "403 `not_admitted` without a valid one); ignored by an open sale.",
        ),
    ] = None,
) -> PurchaseAccepted:
    """Take stock now and queue the order; the order row reaches Postgres shortly after.

    With an `Idempotency-Key`, repeating the request returns the first answer and takes
    no more stock.

    After a `503` (`recovering`: the hot store is unreachable, stalled or being rebuilt)
    or a timeout, the outcome of the attempt is **unknown**: it may have been accepted
    just before the fault. Retry after `Retry-After` seconds with the **same**
    `Idempotency-Key`: that returns the first answer if the attempt went through, and
    decides afresh if it did not, so nobody is sold a unit twice.

    A queue or draw sale sells only with `X-Seckill-Pass`: a pass it gave this user for
    this event, still valid (403 `not_admitted` otherwise, nothing taken)."""
    started = time.perf_counter()
    try:
        accepted = await service.purchase(
            services=services,
            item_id=item_id,
            user=user,
            quantity=body.quantity if body else 1,
            idempotency_key=idempotency_key,
            client_address=address_of(request, services),
            coupon=body.coupon if body else None,
            channel=channel_code(x_channel),
            pass_text=x_seckill_pass,
        )
    finally:
        purchase_seconds.observe(time.perf_counter() - started)
    return PurchaseAccepted(order_id=accepted.order_id)
