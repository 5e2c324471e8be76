from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from app.auth import AdminUser
from app.campaigns import service as campaigns
from app.campaigns.errors import CampaignNotFound
from app.campaigns.schemas import (
    CampaignCreate,
    CampaignPublic,
    CampaignRead,
    CampaignUpdate,
    CopyCreate,
    CopyRead,
    Rejection,
    RulesRead,
)
from app.container import ContainerDep
from app.db import SessionDep
from app.errors import (
    Forbidden,
    InvalidState,
    Recovering,
    Unauthorized,
    ValidationFailed,
    problem_responses,
)
from app.ids import MAX_ID
from app.inventory.errors import InsufficientStock
from app.moments import utc_now
from app.pagination import PageDep
from app.planning import service

public = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns"])
admin = APIRouter(prefix="/api/v1/admin/campaigns", tags=["campaigns (admin)"])

AUTH_PROBLEMS = (Unauthorized, Forbidden)
CampaignId = Annotated[int, Path(ge=1, le=MAX_ID)]
STEP_PROBLEMS = (*AUTH_PROBLEMS, CampaignNotFound, InvalidState)


@admin.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(*AUTH_PROBLEMS, ValidationFailed),
)
async def create_campaign(
    data: CampaignCreate, session: SessionDep, services: ContainerDep, user: AdminUser
) -> CampaignRead:
    """A draft campaign: phases (warm-up, peak, return, in this order, not overlapping),
    rules shown to shoppers (version 1), targets, channels with their cost, and an
    optional baseline campaign to compare with. Add events (inside the peak), coupons
    and promotions to it with their `campaign_id`, then submit it for approval."""
    campaign = await campaigns.create_campaign(session=session, data=data, actor=user)
    return await service.read(session=session, services=services, campaign=campaign)


@admin.get("", responses=problem_responses(*AUTH_PROBLEMS))
async def list_campaigns(
    session: SessionDep, services: ContainerDep, _: AdminUser, page: PageDep
) -> list[CampaignRead]:
    """Every campaign, newest first, with its status and approvals."""
    rows = await campaigns.list_campaigns(session=session, limit=page.limit, offset=page.offset)
    return [await service.read(session=session, services=services, campaign=c) for c in rows]


@admin.get("/{campaign_id}", responses=problem_responses(*AUTH_PROBLEMS, CampaignNotFound))
async def get_campaign(
    campaign_id: CampaignId, session: SessionDep, services: ContainerDep, _: AdminUser
) -> CampaignRead:
    campaign = await campaigns.get_campaign(session, campaign_id)
    return await service.read(session=session, services=services, campaign=campaign)


@admin.patch(
    "/{campaign_id}",
    responses=problem_responses(*STEP_PROBLEMS, ValidationFailed, Recovering),
)
async def update_campaign(
    campaign_id: CampaignId,
    data: CampaignUpdate,
    session: SessionDep,
    services: ContainerDep,
    user: AdminUser,
) -> CampaignRead:
    """Change `rules` (a new version, stamped on every order accepted from this answer
    on: 503 `recovering`, nothing changed, if the live sale cannot take it now),
    `targets` or `channels`; `name` too while a draft. 409 `invalid_state` while it
    awaits approval (reject it first) or for anything else once approved."""
    campaign = await service.update(
        session=session, services=services, campaign_id=campaign_id, actor=user, data=data
    )
    return await service.read(session=session, services=services, campaign=campaign)


@admin.post("/{campaign_id}/submit", responses=problem_responses(*STEP_PROBLEMS))
async def submit_campaign(
    campaign_id: CampaignId, session: SessionDep, services: ContainerDep, user: AdminUser
) -> CampaignRead:
    """Draft -> `pending_approval`. The submitter is the one operator who cannot approve it."""
    campaign = await campaigns.submit(
        session=session, campaign_id=campaign_id, actor=user, now=utc_now()
    )
    return await service.read(session=session, services=services, campaign=campaign)


@admin.post("/{campaign_id}/approve", responses=problem_responses(*STEP_PROBLEMS, Recovering))
async def approve_campaign(
    campaign_id: CampaignId, session: SessionDep, services: ContainerDep, user: AdminUser
) -> CampaignRead:
    """The caller's approval for a group of theirs (the token's `groups`) still missing.
    Once every group of SECKILL_CAMPAIGN_APPROVER_GROUPS has approved, each by a
    different operator, the campaign is `approved` and its events, coupons and
    promotions are visible and sell. 403 `forbidden` for its submitter or an operator of
    no missing group; 409 `invalid_state` if it is not awaiting approval or the caller
    approved already."""
    campaign = await service.approve(
        session=session, services=services, campaign_id=campaign_id, actor=user
    )
    return await service.read(session=session, services=services, campaign=campaign)


@admin.post("/{campaign_id}/reject", responses=problem_responses(*STEP_PROBLEMS, ValidationFailed))
async def reject_campaign(
    campaign_id: CampaignId,
    data: Rejection,
    session: SessionDep,
    services: ContainerDep,
    user: AdminUser,
) -> CampaignRead:
    """Back to `draft`, with the reason (in the audit log); by an operator of an
    approving group. The next submission starts the approvals over."""
    campaign = await campaigns.reject(
        session=session,
        campaign_id=campaign_id,
        actor=user,
        reason=data.reason,
        required_groups=services.settings.campaign_approver_groups,
    )
    return await service.read(session=session, services=services, campaign=campaign)


@admin.post(
    "/{campaign_id}/copy",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(
        *AUTH_PROBLEMS, CampaignNotFound, ValidationFailed, InsufficientStock
    ),
)
async def copy_campaign(
    campaign_id: CampaignId,
    data: CopyCreate,
    session: SessionDep,
    services: ContainerDep,
    user: AdminUser,
) -> CopyRead:
    """A new draft: the campaign with its events, coupons and promotions, every time
    moved by `shift_days` (its baseline is the source). Each event's items take their
    allocation from the SKUs again (409 `insufficient_stock` if a SKU has not that many
    on hand); a window that the shift leaves in the past is a 422."""
    return await service.copy(
        session=session,
        services=services,
        campaign_id=campaign_id,
        actor=user,
        shift_days=data.shift_days,
    )


@public.get("/{campaign_id}", responses=problem_responses(CampaignNotFound))
async def get_public_campaign(campaign_id: CampaignId, session: SessionDep) -> CampaignPublic:
    """An approved campaign: its phases, the phase now, and its current rules."""
    campaign = await campaigns.get_public(session, campaign_id)
    return campaigns.public_view(campaign, now=utc_now())


@public.get("/{campaign_id}/rules", responses=problem_responses(CampaignNotFound))
async def get_rules(
    campaign_id: CampaignId,
    session: SessionDep,
    version: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="A version; absent: the current one.")
    ] = None,
) -> RulesRead:
    """The campaign's rules as published in `version` (every change is a new version)."""
    return await campaigns.rules_of(session, campaign_id, version)
