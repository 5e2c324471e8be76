"""Members' figures for the sale and campaign reports: the points their orders issued and
took back, and the invites accepted during the sale or the campaign and rewarded on its
orders."""

from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.members import stats_repository as repository
from app.members.stats_repository import Scope


class PointsIssued(BaseModel):
    earned: int = Field(description="Points earned by the paid orders.")
    reversed: int = Field(description="Points taken back by refunds.")
    net: int = Field(description="earned - reversed.")
    shortfall: int = Field(
        description="Points refunds could not take back (already spent): still with the users."
    )


class InvitesReport(BaseModel):
    accepted: int = Field(description="Invites accepted during the sale's (campaign's) window.")
    rewarded_pairs: int = Field(
        description="Invitees whose first paid order is one of these orders, each rewarding "
        "the invitee and the inviter with one coupon."
    )
    reward_failed: int = Field(
        description="Such first payments whose reward could not be granted (no or an "
        "unusable reward coupon)."
    )


class MembersReport(BaseModel):
    points: PointsIssued
    invites: InvitesReport


async def members_report(
    *,
    session: AsyncSession,
    scope: Scope,
    scope_id: int,
    window: tuple[datetime, datetime] | None,
) -> MembersReport:
    points = await repository.points_of(session, scope=scope, scope_id=scope_id)
    invites = await repository.invites_of(
        session,
        scope=scope,
        scope_id=scope_id,
        accepted_from=None if window is None else window[0],
        accepted_until=None if window is None else window[1],
    )
    return MembersReport(
        points=PointsIssued(
            earned=points.earned,
            reversed=points.reversed,
            net=points.earned - points.reversed,
            shortfall=points.shortfall,
        ),
        invites=InvitesReport(
            accepted=invites.accepted,
            rewarded_pairs=invites.rewarded,
            reward_failed=invites.reward_failed,
        ),
    )
