"""Promotions (stub until the promotions branch lands: the interface the campaign desk
calls)."""

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.models import Campaign
from app.container import Container


async def put_campaign_in_force(
    *, session: AsyncSession, services: Container, campaign: Campaign
) -> None:
    """Re-apply every promotion of the campaign's terms (held unless approved) to Redis."""


async def copy_promotions(
    *, session: AsyncSession, source_campaign_id: int, target_campaign_id: int, shift: timedelta
) -> dict[int, int]:
    """Copy the campaign's promotions, times shifted; old id -> new id."""
    return {}
