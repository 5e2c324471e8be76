from typing import Annotated

from fastapi import APIRouter, Header, Path, status

from app.auth import AdminUser, CurrentUser
from app.container import ContainerDep
from app.coupons import grants, service
from app.coupons.errors import AudienceMismatch, CouponExhausted, CouponNotFound
from app.coupons.schemas import (
    ClaimRead,
    CouponCreate,
    CouponRead,
    GrantCreate,
    JobAccepted,
    UserCouponRead,
)
from app.db import SessionDep
from app.errors import (
    Ended,
    Forbidden,
    InvalidState,
    LimitExceeded,
    NotStarted,
    RateLimited,
    Unauthorized,
    ValidationFailed,
    problem_responses,
)
from app.ids import MAX_ID, IdempotencyKey
from app.pagination import PageDep
from app.ratelimit.service import ClaimingUser

public = APIRouter(prefix="/api/v1", tags=["coupons"])
admin = APIRouter(prefix="/api/v1/admin/coupons", tags=["coupons (admin)"])

CouponId = Annotated[int, Path(ge=1, le=MAX_ID)]
AUTH_PROBLEMS = (Unauthorized, Forbidden)


@admin.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(*AUTH_PROBLEMS, ValidationFailed, InvalidState),
)
async def create_coupon(
    data: CouponCreate, session: SessionDep, services: ContainerDep, _: AdminUser
) -> CouponRead:
    """Create a coupon template; it is claimable (POST /coupons/{id}/claim) within its
    claim window, at most `total_quantity` in all and `per_user_limit` per user."""
    coupon = await service.create_coupon(session=session, services=services, data=data)
    return await service.get_coupon(session=session, services=services, coupon_id=coupon.id)


@public.get("/coupons")
async def list_coupons(
    session: SessionDep, services: ContainerDep, page: PageDep
) -> list[CouponRead]:
    """Templates claimable now or later, each with `remaining`."""
    return await service.list_coupons(
        session=session, services=services, limit=page.limit, offset=page.offset
    )


@public.get("/coupons/{coupon_id}", responses=problem_responses(CouponNotFound))
async def get_coupon(
    coupon_id: CouponId, session: SessionDep, services: ContainerDep
) -> CouponRead:
    return await service.get_coupon(
        session=session, services=services, coupon_id=coupon_id, shopper=True
    )


@public.post(
    "/coupons/{coupon_id}/claim",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(
        Unauthorized,
        CouponNotFound,
        CouponExhausted,
        LimitExceeded,
        NotStarted,
        Ended,
        AudienceMismatch,
        ValidationFailed,
        RateLimited,
    ),
)
async def claim_coupon(
    coupon_id: CouponId,
    user: ClaimingUser,
    session: SessionDep,
    services: ContainerDep,
    idempotency_key: Annotated[IdempotencyKey | None, Header(alias="Idempotency-Key")] = None,
) -> ClaimRead:
    """Claim one coupon of this template. Its `id` is what checkout takes as `coupon`.

    With an `Idempotency-Key`, repeating the request returns the first claim and takes
    no other coupon."""
    return await service.claim(
        session=session,
        services=services,
        coupon_id=coupon_id,
        user=user,
        idempotency_key=idempotency_key,
    )


@public.get("/me/coupons", responses=problem_responses(Unauthorized))
async def my_coupons(session: SessionDep, user: CurrentUser, page: PageDep) -> list[UserCouponRead]:
    """Your coupons, newest first: `available`, `used` (on `order_id`) or `expired`. A
    coupon claimed a moment ago appears once the order writer has stored it (checkout
    takes it at once)."""
    return await service.list_my_coupons(
        session=session, user=user, limit=page.limit, offset=page.offset
    )


@admin.post(
    "/{coupon_id}/grants",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(*AUTH_PROBLEMS, CouponNotFound, ValidationFailed, InvalidState),
)
async def grant_coupons(
    coupon_id: CouponId,
    data: GrantCreate,
    session: SessionDep,
    services: ContainerDep,
    user: AdminUser,
    idempotency_key: Annotated[IdempotencyKey | None, Header(alias="Idempotency-Key")] = None,
) -> JobAccepted:
    """Grant one coupon of this template to each listed user, or to every buyer of an
    event (compensation, rewards), as a background job: follow it at
    GET /api/v1/admin/jobs/{job_id}. Each user gets one coupon from a grant, however
    often it is resumed; with an `Idempotency-Key`, a retried request returns the first
    job. Grants ignore the claim window, audience and limits."""
    job = await grants.create_grant(
        session=session,
        coupon_id=coupon_id,
        data=data,
        idempotency_key=idempotency_key,
        actor=user,
    )
    grants.start_after_commit(session=session, services=services, job_id=job.id)
    return JobAccepted(job_id=job.id)
