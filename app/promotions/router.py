from typing import Annotated

from fastapi import APIRouter, Path, status

from app.auth import AdminUser
from app.campaigns.errors import CampaignNotFound
from app.container import ContainerDep
from app.db import SessionDep
from app.errors import Forbidden, Unauthorized, ValidationFailed, problem_responses
from app.ids import MAX_ID
from app.moments import utc_now
from app.promotions import service
from app.promotions.errors import PromotionNotFound
from app.promotions.schemas import PromotionCreate, PromotionRead

public = APIRouter(prefix="/api/v1/promotions", tags=["promotions"])
admin = APIRouter(prefix="/api/v1/admin/promotions", tags=["promotions (admin)"])

PromotionId = Annotated[int, Path(ge=1, le=MAX_ID)]
AUTH_PROBLEMS = (Unauthorized, Forbidden)


@admin.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(*AUTH_PROBLEMS, ValidationFailed, CampaignNotFound),
)
async def create_promotion(
    data: PromotionCreate, session: SessionDep, services: ContainerDep, _: AdminUser
) -> PromotionRead:
    """满减 for the first `daily_limit` regular orders of each day (the campaign's timezone,
    else UTC) whose subtotal in `scope` reaches `min_spend`, at most
    `per_user_daily_limit` of them per user. Checkout applies it by itself, unless the
    order uses a coupon; a promotion of a campaign applies only once it is approved."""
    promotion = await service.create_promotion(session=session, services=services, data=data)
    return service.read(promotion)


@admin.get("/{promotion_id}", responses=problem_responses(*AUTH_PROBLEMS, PromotionNotFound))
async def get_promotion(
    promotion_id: PromotionId, session: SessionDep, _: AdminUser
) -> PromotionRead:
    return service.read(await service.get_promotion(session=session, promotion_id=promotion_id))


@public.get("")
async def list_promotions(session: SessionDep) -> list[PromotionRead]:
    """Promotions in force now (of approved campaigns, or of none)."""
    return await service.list_public(session=session, now=utc_now())
