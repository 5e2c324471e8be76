"""What a campaign's approval and rules changes put in force in the live sale, and copies
of a campaign. Never commits.

Approval releases the campaign's events, coupons and promotions at once: its events'
items take the change as a mid-sale change does (a new terms version, in force in Redis
before the commit, or 503 `recovering` and nothing changes: app/events/controls.py);
its coupons after the commit (a coupon once released is never held again, so it must
not be released by a transaction that then rolls back; the worker's terms check
releases any that the after-commit step missed); its promotions as
app/promotions/service.py says. A rules change reaches the items the same way, so every
order accepted from the answer on carries the new version."""

from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit_log import service as audit_log
from app.auth import User
from app.campaigns import service as campaigns
from app.campaigns.models import Campaign, Phase
from app.campaigns.schemas import CampaignCreate, CampaignRead, CampaignUpdate, CopyRead
from app.container import Container
from app.coupons import service as coupons
from app.coupons.repository import campaign_coupons
from app.coupons.schemas import CouponCreate
from app.db import after_commit
from app.errors import ValidationFailed
from app.events import controls
from app.events import repository as events_repository
from app.events import service as events
from app.events.schemas import EventCreate
from app.moments import utc_now
from app.promotions import service as promotions


async def read(*, session: AsyncSession, services: Container, campaign: Campaign) -> CampaignRead:
    return await campaigns.read(
        session=session,
        campaign=campaign,
        now=utc_now(),
        required_groups=services.settings.campaign_approver_groups,
    )


async def approve(
    *, session: AsyncSession, services: Container, campaign_id: int, actor: User
) -> Campaign:
    """One approval; the last one needed releases the campaign's sale."""
    now = utc_now()
    approved = await campaigns.approve(
        session=session,
        campaign_id=campaign_id,
        actor=actor,
        required_groups=services.settings.campaign_approver_groups,
        now=now,
    )
    campaign = await campaigns.get_campaign(session, campaign_id)
    if approved:
        await controls.put_campaign_in_force(
            session=session,
            services=services,
            campaign_id=campaign_id,
            held_before=True,
            rules_version_before=campaign.rules_version,
            now=now,
        )
        await promotions.put_campaign_in_force(
            session=session, services=services, campaign=campaign
        )
        released = list(await campaign_coupons(session, campaign_id))
        after_commit(
            session,
            partial(
                coupons.publish_coupons_or_defer,
                session=session,
                services=services,
                coupons=released,
            ),
        )
    return campaign


async def update(
    *,
    session: AsyncSession,
    services: Container,
    campaign_id: int,
    actor: User,
    data: CampaignUpdate,
) -> Campaign:
    """A change of the plan; a new rules version is in force on the sale when answered."""
    before = await campaigns.get_campaign(session, campaign_id)
    rules_version_before = before.rules_version
    campaign, rules_changed = await campaigns.update(
        session=session, campaign_id=campaign_id, actor=actor, data=data
    )
    if rules_changed:
        await controls.put_campaign_in_force(
            session=session,
            services=services,
            campaign_id=campaign_id,
            held_before=not campaign.approved,
            rules_version_before=rules_version_before,
            now=utc_now(),
        )
    return campaign


async def copy(
    *,
    session: AsyncSession,
    services: Container,
    campaign_id: int,
    actor: User,
    shift_days: int,
) -> CopyRead:
    """A new draft with the campaign's phases, rules, targets and channels, and a copy of
    each of its events (their items' allocations taken from the SKUs again), coupons and
    promotions, every time moved by `shift_days`. The copy is compared with the source
    in its report (its baseline)."""
    source = await campaigns.get_campaign(session, campaign_id)
    shift = timedelta(days=shift_days)
    # Created as any campaign is (validated, rules version 1, audit-logged): shifted.
    plan = _shifted_spec(
        CampaignCreate,
        {
            "name": source.name,
            "timezone": source.timezone,
            "phases": {
                phase.value: {
                    "starts_at": _moved(window[0], shift),
                    "ends_at": _moved(window[1], shift),
                }
                for phase in Phase
                if (window := campaigns.phase_window(source, phase)) is not None
            },
            "rules": source.rules,
            "targets": {
                "gmv": source.target_gmv,
                "orders": source.target_orders,
                "new_buyers": source.target_new_buyers,
            },
            "channels": [{"code": c.code, "cost": c.cost} for c in source.channels],
            "baseline_campaign_id": source.id,
        },
        f"campaign {campaign_id}",
    )
    copied = await campaigns.create_campaign(session=session, data=plan, actor=actor)
    event_ids = await _copy_events(
        session=session, services=services, source=source, target=copied, shift=shift, actor=actor
    )
    coupon_ids = await _copy_coupons(
        session=session, services=services, source=source, target=copied, shift=shift
    )
    promotion_ids = await promotions.copy_promotions(
        session=session,
        source_campaign_id=source.id,
        target_campaign_id=copied.id,
        shift=shift,
    )
    await audit_log.record(
        session=session,
        actor=actor,
        action="campaign.copy",
        target=campaigns.target(copied.id),
        before={"campaign_id": source.id},
        after={
            "campaign_id": copied.id,
            "shift_days": shift_days,
            "events": event_ids,
            "coupons": coupon_ids,
            "promotions": promotion_ids,
        },
    )
    return CopyRead(
        campaign=await read(session=session, services=services, campaign=copied),
        events=event_ids,
        coupons=coupon_ids,
        promotions=promotion_ids,
    )


# The moments in an event's access (app/events/access.py) a copy moves with the event.
_ACCESS_MOMENTS = ("opens_at", "registration_starts_at", "registration_ends_at")


def _shifted_access(access: dict[str, Any], shift: timedelta) -> dict[str, Any]:
    return {
        name: _moved(datetime.fromisoformat(value), shift) if name in _ACCESS_MOMENTS else value
        for name, value in access.items()
    }


def _moved(moment: datetime | None, shift: timedelta) -> datetime | None:
    """`moment` shifted; one no datetime holds is a 422 (the shift is too far)."""
    try:
        return None if moment is None else moment + shift
    except OverflowError as exc:
        raise ValidationFailed(
            f"Shifted by {shift.days} days, {moment} is past any date.", field="shift_days"
        ) from exc


async def _copy_events(
    *,
    session: AsyncSession,
    services: Container,
    source: Campaign,
    target: Campaign,
    shift: timedelta,
    actor: User,
) -> dict[int, int]:
    copies: dict[int, int] = {}
    for event_id in await events_repository.campaign_event_ids(session, source.id):
        event = await events.get_event_row(session=session, event_id=event_id)
        data = _shifted_spec(
            EventCreate,
            {
                "name": event.name,
                "starts_at": _moved(event.starts_at, shift),
                "ends_at": _moved(event.ends_at, shift),
                "member_early_access_seconds": event.member_early_access_seconds,
                "items": [
                    {
                        "sku": item.sku,
                        "name": item.name,
                        "list_price": item.list_price,
                        "seckill_price": item.seckill_price,
                        "stock": item.stock,
                        "per_user_limit": item.per_user_limit,
                    }
                    for item in event.items
                ],
                "campaign_id": target.id,
                "access": _shifted_access(event.access, shift),
                # The same promise, its ship-by computed anew from the moved end.
                "ship_within_days": event.ship_within_days,
            },
            f"event {event.id}",
        )
        created = await events.create_event(
            session=session, services=services, data=data, actor=actor
        )
        copies[event.id] = created.id
    return copies


async def _copy_coupons(
    *,
    session: AsyncSession,
    services: Container,
    source: Campaign,
    target: Campaign,
    shift: timedelta,
) -> dict[int, int]:
    copies: dict[int, int] = {}
    for coupon in await campaign_coupons(session, source.id):
        by_phase = coupon.phase is not None
        scope = None
        if coupon.scope_skus is not None or coupon.scope_categories is not None:
            scope = {"skus": coupon.scope_skus, "categories": coupon.scope_categories}
        data = _shifted_spec(
            CouponCreate,
            {
                "name": coupon.name,
                "kind": coupon.kind,
                "amount_off": coupon.amount_off,
                "percent_off": coupon.percent_off,
                "max_discount": coupon.max_discount,
                "tiers": coupon.tiers,
                "min_spend": coupon.min_spend,
                "scope": scope,
                "audience": coupon.audience,
                "claim_starts_at": None if by_phase else _moved(coupon.claim_starts_at, shift),
                "claim_ends_at": None if by_phase else _moved(coupon.claim_ends_at, shift),
                "valid_until": _moved(coupon.valid_until, shift),
                "valid_days_after_claim": coupon.valid_days_after_claim,
                "total_quantity": coupon.total_quantity,
                "per_user_limit": coupon.per_user_limit,
                "campaign_id": target.id,
                "phase": coupon.phase,
                "valid_from": _moved(coupon.valid_from, shift),
            },
            f"coupon {coupon.id}",
        )
        created = await coupons.create_coupon(session=session, services=services, data=data)
        copies[coupon.id] = created.id
    return copies


Spec = TypeVar("Spec", bound=BaseModel)


def _shifted_spec(model: type[Spec], values: dict[str, Any], what: str) -> Spec:
    """A copy's creation spec, validated as a request's would be: a shift that leaves
    it invalid (a window already over) is a 422 naming the piece, not a 500."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValidationFailed(
            f"Shifted, {what} is no longer valid ({problems}).", field="shift_days"
        ) from exc
