"""A campaign's plan and its approval, in Postgres. Never commits, never touches Redis:
what approval and rules changes put in force in the live sale is app/planning's.

Approval: a draft is submitted (-> pending_approval); each operator of a group in
`campaign_approver_groups` approves once; the campaign is approved when every group
has, each by a different operator, none of them its submitter. A rejection (with a
reason) sends it back to draft; the next submission starts the approvals over."""

import functools
import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit_log import service as audit_log
from app.auth import User
from app.campaigns import repository
from app.campaigns.errors import CampaignNotFound
from app.campaigns.models import (
    Campaign,
    CampaignApproval,
    CampaignChannel,
    CampaignRules,
    CampaignStatus,
    Phase,
)
from app.campaigns.schemas import (
    CHANNEL_PATTERN,
    OTHER_CHANNEL,
    ApprovalRead,
    CampaignCreate,
    CampaignPublic,
    CampaignRead,
    CampaignUpdate,
    ChannelCreate,
    ChannelRead,
    PhasesRead,
    RulesRead,
    TargetsRead,
    WindowRead,
)
from app.errors import Forbidden, InvalidState, ValidationFailed

_CHANNEL = re.compile(CHANNEL_PATTERN)


def target(campaign_id: int) -> str:
    """The audit log's name for a campaign."""
    return f"campaign:{campaign_id}"


def phase_window(campaign: Campaign, phase: Phase) -> tuple[datetime, datetime] | None:
    windows = {
        Phase.WARM_UP: (campaign.warm_up_starts_at, campaign.warm_up_ends_at),
        Phase.PEAK: (campaign.peak_starts_at, campaign.peak_ends_at),
        Phase.RETURN: (campaign.return_starts_at, campaign.return_ends_at),
    }
    starts_at, ends_at = windows[phase]
    return None if starts_at is None or ends_at is None else (starts_at, ends_at)


def phase_at(campaign: Campaign, at: datetime) -> Phase | None:
    """The phase `at` lies in (None: none does)."""
    for phase in Phase:
        window = phase_window(campaign, phase)
        if window is not None and window[0] <= at < window[1]:
            return phase
    return None


def campaign_day(timezone: str | None, at: datetime) -> date:
    """The calendar day `at` falls on in the campaign's timezone (UTC without one): the
    day a daily limit counts in."""
    return at.astimezone(ZoneInfo(timezone or "UTC")).date()


@functools.lru_cache(maxsize=1024)
def channel_code(header: str | None) -> str | None:
    """The X-Channel header as a code: None without one, "other" for one no campaign
    could list (CHANNEL_PATTERN: lower-case, at most 32 characters). Remembered: a
    purchase's header is one of a few codes, looked up on the hot path."""
    if header is None or header == "":
        return None
    return header if _CHANNEL.fullmatch(header) else OTHER_CHANNEL


def channel_of(campaign: Campaign | None, code: str | None) -> str | None:
    """What an order records for the X-Channel code it came with: the code if its
    campaign lists it (any well-formed code without a campaign), else "other"; None
    without a code."""
    if code is None:
        return None
    if campaign is None:
        return code
    return code if any(c.code == code for c in campaign.channels) else OTHER_CHANNEL


async def get_campaign(session: AsyncSession, campaign_id: int) -> Campaign:
    campaign = await repository.get_campaign(session, campaign_id)
    if campaign is None:
        raise CampaignNotFound(f"No campaign {campaign_id}.")
    return campaign


async def list_campaigns(*, session: AsyncSession, limit: int, offset: int) -> Sequence[Campaign]:
    return await repository.list_campaigns(session, limit=limit, offset=offset)


async def get_public(session: AsyncSession, campaign_id: int) -> Campaign:
    """The campaign as shoppers may see it: approved, else 404."""
    campaign = await repository.get_campaign(session, campaign_id)
    if campaign is None or not campaign.approved:
        raise CampaignNotFound(f"No campaign {campaign_id}.")
    return campaign


def _channels(data: Sequence[ChannelCreate]) -> list[CampaignChannel]:
    return [CampaignChannel(code=c.code, cost=c.cost) for c in data]


async def create_campaign(*, session: AsyncSession, data: CampaignCreate, actor: User) -> Campaign:
    baseline = data.baseline_campaign_id
    if baseline is not None and await repository.get_campaign(session, baseline) is None:
        raise ValidationFailed(
            f"No campaign {baseline} to compare with.", field="baseline_campaign_id"
        )
    phases = data.phases
    targets = data.targets
    campaign = Campaign(
        name=data.name,
        timezone=data.timezone,
        status=CampaignStatus.DRAFT,
        warm_up_starts_at=phases.warm_up.starts_at if phases.warm_up else None,
        warm_up_ends_at=phases.warm_up.ends_at if phases.warm_up else None,
        peak_starts_at=phases.peak.starts_at,
        peak_ends_at=phases.peak.ends_at,
        return_starts_at=phases.return_.starts_at if phases.return_ else None,
        return_ends_at=phases.return_.ends_at if phases.return_ else None,
        rules=data.rules,
        rules_version=1,
        target_gmv=targets.gmv if targets else None,
        target_orders=targets.orders if targets else None,
        target_new_buyers=targets.new_buyers if targets else None,
        baseline_campaign_id=data.baseline_campaign_id,
        created_by=actor.id,
        submission=0,
        channels=_channels(data.channels),
    )
    session.add(campaign)
    await session.flush()
    session.add(CampaignRules(campaign_id=campaign.id, version=1, rules=data.rules, actor=actor.id))
    await audit_log.record(
        session=session,
        actor=actor,
        action="campaign.create",
        target=target(campaign.id),
        after={"name": campaign.name, "rules_version": 1},
    )
    return campaign


async def _locked(session: AsyncSession, campaign_id: int) -> Campaign:
    campaign = await repository.lock_campaign(session, campaign_id)
    if campaign is None:
        raise CampaignNotFound(f"No campaign {campaign_id}.")
    return campaign


async def submit(
    *, session: AsyncSession, campaign_id: int, actor: User, now: datetime
) -> Campaign:
    """Draft -> pending approval; the actor becomes the one operator who cannot approve."""
    campaign = await _locked(session, campaign_id)
    if campaign.status != CampaignStatus.DRAFT:
        raise InvalidState(
            f"Campaign {campaign_id} is {campaign.status}: only a draft is submitted."
        )
    if campaign.peak_ends_at <= now:
        raise InvalidState(f"Campaign {campaign_id}'s peak has ended: copy it into a new one.")
    campaign.status = CampaignStatus.PENDING_APPROVAL
    campaign.submission += 1
    campaign.submitted_by = actor.id
    await audit_log.record(
        session=session,
        actor=actor,
        action="campaign.submit",
        target=target(campaign_id),
        before={"status": CampaignStatus.DRAFT},
        after={"status": campaign.status, "submission": campaign.submission},
    )
    return campaign


def _missing(required: Sequence[str], approvals: Sequence[CampaignApproval]) -> list[str]:
    given = {a.approver_group for a in approvals}
    return [group for group in required if group not in given]


async def approve(
    *,
    session: AsyncSession,
    campaign_id: int,
    actor: User,
    required_groups: Sequence[str],
    now: datetime,
) -> bool:
    """One operator's approval, for the first group of theirs still missing; True if it
    was the last one needed (the campaign is approved now)."""
    campaign = await _locked(session, campaign_id)
    if campaign.status != CampaignStatus.PENDING_APPROVAL:
        raise InvalidState(
            f"Campaign {campaign_id} is {campaign.status}: only one awaiting approval is approved."
        )
    if actor.id == campaign.submitted_by:
        raise Forbidden(f"{actor.id} submitted campaign {campaign_id} and cannot approve it.")
    given = await repository.approvals(session, campaign_id, campaign.submission)
    if any(a.actor == actor.id for a in given):
        raise InvalidState(f"{actor.id} has already approved campaign {campaign_id}.")
    missing = _missing(required_groups, given)
    theirs = [group for group in missing if group in actor.groups]
    if not theirs:
        needed = ", ".join(missing)
        raise Forbidden(
            f"Campaign {campaign_id} awaits approval by {needed}; the token's groups "
            f"({', '.join(sorted(actor.groups)) or 'none'}) give none of them."
        )
    group = theirs[0]
    session.add(
        CampaignApproval(
            campaign_id=campaign_id,
            submission=campaign.submission,
            approver_group=group,
            actor=actor.id,
        )
    )
    approved = len(missing) == 1
    await audit_log.record(
        session=session,
        actor=actor,
        action="campaign.approve",
        target=target(campaign_id),
        before={"status": campaign.status},
        after={
            "group": group,
            "submission": campaign.submission,
            "status": CampaignStatus.APPROVED if approved else campaign.status,
        },
    )
    if approved:
        campaign.status = CampaignStatus.APPROVED
        campaign.approved_at = now
    await session.flush()
    return approved


async def reject(
    *,
    session: AsyncSession,
    campaign_id: int,
    actor: User,
    reason: str,
    required_groups: Sequence[str],
) -> Campaign:
    """Pending approval -> draft, with the reason; by an operator of an approving group."""
    campaign = await _locked(session, campaign_id)
    if campaign.status != CampaignStatus.PENDING_APPROVAL:
        raise InvalidState(
            f"Campaign {campaign_id} is {campaign.status}: only one awaiting approval is rejected."
        )
    if not actor.groups.intersection(required_groups):
        raise Forbidden(f"Only an operator of {', '.join(required_groups)} rejects a campaign.")
    campaign.status = CampaignStatus.DRAFT
    await audit_log.record(
        session=session,
        actor=actor,
        action="campaign.reject",
        target=target(campaign_id),
        before={"status": CampaignStatus.PENDING_APPROVAL, "submission": campaign.submission},
        after={"status": CampaignStatus.DRAFT, "reason": reason},
    )
    return campaign


async def update(
    *, session: AsyncSession, campaign_id: int, actor: User, data: CampaignUpdate
) -> tuple[Campaign, bool]:
    """Change what may change; returns the campaign and whether its rules changed (a new
    version, which the live sale must take)."""
    campaign = await _locked(session, campaign_id)
    fields = data.model_fields_set
    if campaign.status == CampaignStatus.PENDING_APPROVAL and fields:
        raise InvalidState(
            f"Campaign {campaign_id} awaits approval: reject it to change it (approvers "
            "approve what they were shown)."
        )
    if "name" in fields and campaign.status != CampaignStatus.DRAFT:
        raise InvalidState(
            f"Campaign {campaign_id} is approved: only rules, targets and channels change."
        )
    for name in ("name", "rules"):
        if name in fields and getattr(data, name) is None:
            raise ValidationFailed(f"{name} cannot be removed.", field=name)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if data.name is not None and data.name != campaign.name:
        before["name"], after["name"] = campaign.name, data.name
        campaign.name = data.name
    rules_changed = data.rules is not None and data.rules != campaign.rules
    if data.rules is not None and rules_changed:
        before["rules_version"] = campaign.rules_version
        campaign.rules = data.rules
        campaign.rules_version += 1
        after["rules_version"] = campaign.rules_version
        session.add(
            CampaignRules(
                campaign_id=campaign_id,
                version=campaign.rules_version,
                rules=data.rules,
                actor=actor.id,
            )
        )
    if "targets" in fields:
        before["targets"] = _targets(campaign).model_dump()
        targets = data.targets
        campaign.target_gmv = targets.gmv if targets else None
        campaign.target_orders = targets.orders if targets else None
        campaign.target_new_buyers = targets.new_buyers if targets else None
        after["targets"] = _targets(campaign).model_dump()
    if "channels" in fields:
        before["channels"] = {c.code: c.cost for c in campaign.channels}
        campaign.channels = _channels(data.channels or [])
        after["channels"] = {c.code: c.cost for c in campaign.channels}
    if after or "targets" in fields or "channels" in fields:
        await audit_log.record(
            session=session,
            actor=actor,
            action="campaign.update",
            target=target(campaign_id),
            before=before,
            after=after,
        )
    await session.flush()
    return campaign, rules_changed


async def rules_of(session: AsyncSession, campaign_id: int, version: int | None) -> RulesRead:
    campaign = await get_public(session, campaign_id)
    wanted = campaign.rules_version if version is None else version
    found = await repository.rules_version(session, campaign_id, wanted)
    if found is None:
        raise CampaignNotFound(
            f"Campaign {campaign_id} has rules versions 1 to {campaign.rules_version}."
        )
    return RulesRead(
        campaign_id=campaign_id,
        version=found.version,
        rules=found.rules,
        created_at=found.created_at,
    )


def _window(window: tuple[datetime, datetime] | None) -> WindowRead | None:
    return None if window is None else WindowRead(starts_at=window[0], ends_at=window[1])


def _targets(campaign: Campaign) -> TargetsRead:
    return TargetsRead(
        gmv=campaign.target_gmv,
        orders=campaign.target_orders,
        new_buyers=campaign.target_new_buyers,
    )


def public_view(campaign: Campaign, *, now: datetime) -> CampaignPublic:
    return CampaignPublic(
        id=campaign.id,
        name=campaign.name,
        timezone=campaign.timezone,
        phases=_phases(campaign),
        current_phase=phase_at(campaign, now),
        rules=campaign.rules,
        rules_version=campaign.rules_version,
    )


def _phases(campaign: Campaign) -> PhasesRead:
    peak = WindowRead(starts_at=campaign.peak_starts_at, ends_at=campaign.peak_ends_at)
    return PhasesRead(
        warm_up=_window(phase_window(campaign, Phase.WARM_UP)),
        peak=peak,
        return_=_window(phase_window(campaign, Phase.RETURN)),
    )


async def read(
    *, session: AsyncSession, campaign: Campaign, now: datetime, required_groups: Sequence[str]
) -> CampaignRead:
    # A draft's approvals (of a rejected submission) count for nothing.
    given = (
        await repository.approvals(session, campaign.id, campaign.submission)
        if campaign.status != CampaignStatus.DRAFT
        else []
    )
    pending = campaign.status == CampaignStatus.PENDING_APPROVAL
    return CampaignRead(
        **public_view(campaign, now=now).model_dump(by_alias=False),
        status=CampaignStatus(campaign.status),
        targets=_targets(campaign),
        channels=[ChannelRead(code=c.code, cost=c.cost) for c in campaign.channels],
        baseline_campaign_id=campaign.baseline_campaign_id,
        created_by=campaign.created_by,
        submitted_by=campaign.submitted_by,
        approvals=[
            ApprovalRead(group=a.approver_group, actor=a.actor, at=a.created_at) for a in given
        ],
        missing_approvals=_missing(required_groups, given) if pending else [],
        approved_at=campaign.approved_at,
        created_at=campaign.created_at,
    )


async def _draft_to_extend(session: AsyncSession, campaign_id: int, what: str) -> Campaign:
    """The draft campaign `what` is being added to: 422 if there is none, 409 once it
    was submitted (approvers approve what they were shown; copy it to plan more)."""
    campaign = await repository.get_campaign(session, campaign_id)
    if campaign is None:
        raise ValidationFailed(f"No campaign {campaign_id}.", field="campaign_id")
    if campaign.status != CampaignStatus.DRAFT:
        raise InvalidState(
            f"Campaign {campaign_id} is {campaign.status}: {what} are added while it is a "
            "draft (reject it first, or copy it)."
        )
    return campaign


async def slot_of(
    *, session: AsyncSession, campaign_id: int, starts_at: datetime, ends_at: datetime
) -> Campaign:
    """The draft campaign an event with this window becomes a slot of: 422 unless the
    window lies inside its peak."""
    campaign = await _draft_to_extend(session, campaign_id, "events")
    if starts_at < campaign.peak_starts_at or ends_at > campaign.peak_ends_at:
        raise ValidationFailed(
            f"An event of campaign {campaign_id} lies inside its peak "
            f"({campaign.peak_starts_at.isoformat()} to {campaign.peak_ends_at.isoformat()}).",
            field="starts_at" if starts_at < campaign.peak_starts_at else "ends_at",
        )
    return campaign


async def part_of(
    *, session: AsyncSession, campaign_id: int, what: str, phase: Phase | None = None
) -> tuple[Campaign, tuple[datetime, datetime] | None]:
    """The draft campaign a coupon or promotion (`what`) joins, and `phase`'s window (422
    if the campaign has no such phase)."""
    campaign = await _draft_to_extend(session, campaign_id, what)
    if phase is None:
        return campaign, None
    window = phase_window(campaign, phase)
    if window is None:
        raise ValidationFailed(f"Campaign {campaign_id} has no {phase} phase.", field="phase")
    return campaign, window
