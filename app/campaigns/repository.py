from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.models import Campaign, CampaignApproval, CampaignRules


async def get_campaign(session: AsyncSession, campaign_id: int) -> Campaign | None:
    return await session.get(Campaign, campaign_id)


async def lock_campaign(session: AsyncSession, campaign_id: int) -> Campaign | None:
    """The campaign, its row locked: approvals and changes take turns."""
    return await session.get(Campaign, campaign_id, with_for_update=True, populate_existing=True)


async def approvals(
    session: AsyncSession, campaign_id: int, submission: int
) -> Sequence[CampaignApproval]:
    rows = await session.scalars(
        select(CampaignApproval)
        .where(
            CampaignApproval.campaign_id == campaign_id,
            CampaignApproval.submission == submission,
        )
        .order_by(CampaignApproval.id)
    )
    return rows.all()


async def rules_version(
    session: AsyncSession, campaign_id: int, version: int
) -> CampaignRules | None:
    return await session.get(CampaignRules, (campaign_id, version))


async def list_campaigns(session: AsyncSession, *, limit: int, offset: int) -> Sequence[Campaign]:
    rows = await session.scalars(
        select(Campaign).order_by(Campaign.id.desc()).limit(limit).offset(offset)
    )
    return rows.all()
