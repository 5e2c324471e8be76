"""Every SQL statement of the events domain."""

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.campaigns.models import Campaign, CampaignStatus
from app.events.models import TERMS_VERSIONS, Event, EventItem
from app.events.schemas import EventState


async def insert_event(
    session: AsyncSession,
    *,
    name: str,
    starts_at: datetime,
    ends_at: datetime,
    member_early_access_seconds: int,
    campaign_id: int | None = None,
    access: dict[str, Any] | None = None,
    ship_within_days: int | None = None,
    ship_by: datetime | None = None,
) -> Event:
    event = Event(
        name=name,
        starts_at=starts_at,
        ends_at=ends_at,
        member_early_access_seconds=member_early_access_seconds,
        paused=False,
        campaign_id=campaign_id,
        access=access or {"mode": "open"},
        ship_within_days=ship_within_days,
        ship_by=ship_by,
    )
    session.add(event)
    await session.flush()
    return event


async def insert_item(
    session: AsyncSession,
    *,
    event_id: int,
    sku: str,
    name: str,
    list_price: Decimal,
    seckill_price: Decimal,
    stock: int,
    per_user_limit: int,
    member_price: Decimal | None = None,
    member_reserved: int = 0,
    member_reserved_until: datetime | None = None,
) -> EventItem:
    item = EventItem(
        event_id=event_id,
        sku=sku,
        name=name,
        list_price=list_price,
        seckill_price=seckill_price,
        stock=stock,
        per_user_limit=per_user_limit,
        peak_per_user_limit=per_user_limit,
        member_price=member_price,
        member_reserved=member_reserved,
        member_reserved_until=member_reserved_until,
    )
    session.add(item)
    await session.flush()
    return item


async def get_event(session: AsyncSession, event_id: int) -> Event | None:
    return await session.scalar(
        select(Event)
        .where(Event.id == event_id)
        .options(selectinload(Event.items))
        .execution_options(populate_existing=True)
    )


async def get_item(session: AsyncSession, item_id: int) -> EventItem | None:
    return await session.scalar(select(EventItem).where(EventItem.id == item_id))


async def list_events(
    session: AsyncSession,
    *,
    state: EventState | None,
    now: datetime,
    limit: int,
    offset: int,
    paused: bool | None = None,
    shown_to_shoppers: bool = False,
) -> Sequence[Event]:
    query = select(Event).options(selectinload(Event.items))
    if shown_to_shoppers:
        approved = select(Campaign.id).where(Campaign.status == CampaignStatus.APPROVED)
        query = query.where(or_(Event.campaign_id.is_(None), Event.campaign_id.in_(approved)))
    if paused is not None:
        query = query.where(Event.paused.is_(paused))
    if state is EventState.UPCOMING:
        query = query.where(Event.starts_at > now)
    elif state is EventState.LIVE:
        query = query.where(Event.starts_at <= now, Event.ends_at > now)
    elif state is EventState.ENDED:
        query = query.where(Event.ends_at <= now)
    rows = await session.scalars(
        query.order_by(Event.starts_at, Event.id).limit(limit).offset(offset)
    )
    return rows.all()


async def items_not_ended(session: AsyncSession, *, now: datetime) -> Sequence[EventItem]:
    rows = await session.scalars(
        select(EventItem).join(EventItem.event).where(Event.ends_at > now).order_by(EventItem.id)
    )
    return rows.all()


async def next_terms_version(session: AsyncSession) -> int:
    """A terms version newer than any drawn before, never handed out again (even if this
    transaction rolls back)."""
    version = await session.scalar(select(TERMS_VERSIONS.next_value()))
    assert version is not None
    return int(version)


async def lock_item(session: AsyncSession, item_id: int) -> EventItem | None:
    """The item, locked for this transaction: mid-sale changes of one item take turns."""
    return await session.scalar(
        select(EventItem)
        .where(EventItem.id == item_id)
        .with_for_update(of=EventItem)
        .execution_options(populate_existing=True)
    )


async def lock_item_if_free(session: AsyncSession, item_id: int) -> EventItem | None:
    """The item, locked, unless a change holds it now (None then, without waiting)."""
    return await session.scalar(
        select(EventItem)
        .where(EventItem.id == item_id)
        .with_for_update(of=EventItem, skip_locked=True)
        .execution_options(populate_existing=True)
    )


async def lock_event(session: AsyncSession, event_id: int) -> Event | None:
    """The event and its items, locked (items in id order, as lock_item takes them)."""
    event = await session.scalar(
        select(Event)
        .where(Event.id == event_id)
        .with_for_update(of=Event)
        .execution_options(populate_existing=True)
    )
    if event is None:
        return None
    await session.scalars(
        select(EventItem)
        .where(EventItem.event_id == event_id)
        .order_by(EventItem.id)
        .with_for_update(of=EventItem)
        .execution_options(populate_existing=True)
    )
    await session.refresh(event, attribute_names=["items"])
    return event


async def campaign_event_ids(
    session: AsyncSession, campaign_id: int, *, now: datetime | None = None
) -> Sequence[int]:
    """The campaign's events (not ended at `now`, if given), in id order (the order locks
    are taken in)."""
    query = select(Event.id).where(Event.campaign_id == campaign_id)
    if now is not None:
        query = query.where(Event.ends_at > now)
    rows = await session.scalars(query.order_by(Event.id))
    return rows.all()
