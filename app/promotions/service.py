"""Daily promotions (满减 for the first N regular orders of each day): templates in
Postgres, their places in Redis. Never commits.

Redis holds each promotion's terms and, per day (the campaign's timezone, else UTC), the
places taken, each user's places and the orders holding them (promotion.lua). A promotion
of a campaign not approved yet is `held` there: promotion.lua gives it no place, and
shoppers do not see it. Its counters are one more family of the hot-store check
(app/flows/freshness.py): lost or rolled back, they are frozen and rebuilt from the orders
in Postgres (`rebuild_promotion`). Taking and giving back places: app/promotions/places.py.
"""

import logging
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from functools import partial
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns import service as campaigns
from app.campaigns.models import Campaign
from app.container import Container
from app.db import after_commit
from app.errors import ValidationFailed
from app.generations import repository as generations
from app.generations.service import publish_counters, remember_built
from app.moments import utc_now
from app.promotions import repository
from app.promotions.errors import PromotionNotFound
from app.promotions.models import Promotion
from app.promotions.schemas import PromotionCreate, PromotionRead, ScopeRead
from app.store.promotion_keys import PromotionKeys
from app.store.promotion_warmup import DayHolders, PromotionTerms, load_promotion
from app.store.warmup import Build, Built

logger = logging.getLogger(__name__)

PROMOTIONS = "promotions"  # the counter family of a promotion's places (app/generations)
PAGE = 500


# -- days ------------------------------------------------------------------------------


def timezone_of(promotion: Promotion) -> str | None:
    return None if promotion.campaign is None else promotion.campaign.timezone


def day_of(promotion: Promotion, at: datetime) -> date:
    """The day whose places an order placed `at` takes."""
    return campaigns.campaign_day(timezone_of(promotion), at)


def day_keys_expire_at(promotion: Promotion, day: date) -> datetime:
    """A day's counters outlive it by a day: a cancel just after midnight still finds its
    order among the holders (and gives back to the day it took, not the new one)."""
    zone = ZoneInfo(timezone_of(promotion) or "UTC")
    return datetime.combine(day + timedelta(days=2), time(0), tzinfo=zone)


# -- templates -------------------------------------------------------------------------


def _new_promotion(data: PromotionCreate) -> Promotion:
    return Promotion(
        name=data.name,
        campaign_id=data.campaign_id,
        amount_off=data.amount_off,
        min_spend=data.min_spend,
        scope_skus=None if data.scope is None else data.scope.skus,
        scope_categories=None if data.scope is None else data.scope.categories,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        daily_limit=data.daily_limit,
        per_user_daily_limit=data.per_user_daily_limit,
    )


async def create_promotion(
    *, session: AsyncSession, services: Container, data: PromotionCreate
) -> Promotion:
    """Create a promotion; once committed it is loaded into Redis (held while its campaign
    is not approved), or, if Redis fails then, by the hot-store check."""
    if data.campaign_id is not None:
        await campaigns.get_campaign(session, data.campaign_id)
    promotion = _new_promotion(data)
    session.add(promotion)
    await session.flush()
    await session.refresh(promotion, ["campaign"])
    after_commit(
        session,
        partial(
            publish_promotions_or_defer, session=session, services=services, promotions=[promotion]
        ),
    )
    return promotion


async def get_promotion(*, session: AsyncSession, promotion_id: int) -> Promotion:
    promotion = await repository.get_promotion(session, promotion_id)
    if promotion is None:
        raise PromotionNotFound(f"No promotion {promotion_id}.")
    return promotion


def read(promotion: Promotion) -> PromotionRead:
    scope = (
        ScopeRead(skus=promotion.scope_skus, categories=promotion.scope_categories)
        if promotion.scoped
        else None
    )
    return PromotionRead(
        id=promotion.id,
        name=promotion.name,
        campaign_id=promotion.campaign_id,
        amount_off=promotion.amount_off,
        min_spend=promotion.min_spend,
        scope=scope,
        starts_at=promotion.starts_at,
        ends_at=promotion.ends_at,
        daily_limit=promotion.daily_limit,
        per_user_daily_limit=promotion.per_user_daily_limit,
    )


async def list_public(*, session: AsyncSession, now: datetime) -> list[PromotionRead]:
    """Promotions in force now, of approved campaigns or of none."""
    return [read(p) for p in await repository.active(session, now=now)]


async def not_ended(*, session: AsyncSession) -> list[Promotion]:
    """Every promotion whose window has not closed (the hot-store check's)."""
    found: list[Promotion] = []
    while page := await repository.not_ended(session, now=utc_now(), limit=PAGE, offset=len(found)):
        found += page
    return found


async def copy_promotions(
    *, session: AsyncSession, source_campaign_id: int, target_campaign_id: int, shift: timedelta
) -> dict[int, int]:
    """The campaign copy's promotions: each of the source campaign's, every time shifted,
    in the target campaign (a draft: held until approved, loaded into Redis by the
    hot-store check or by `put_campaign_in_force`). A shift that leaves one invalid (its
    window over) is a 422 naming it. Returns old id -> new id."""
    copies: dict[int, Promotion] = {}
    for old in await repository.of_campaign(session, source_campaign_id):
        scope = None
        if old.scoped:
            scope = {"skus": old.scope_skus, "categories": old.scope_categories}
        try:
            data = PromotionCreate.model_validate(
                {
                    "name": old.name,
                    "campaign_id": target_campaign_id,
                    "amount_off": old.amount_off,
                    "min_spend": old.min_spend,
                    "scope": scope,
                    "starts_at": old.starts_at + shift,
                    "ends_at": old.ends_at + shift,
                    "daily_limit": old.daily_limit,
                    "per_user_daily_limit": old.per_user_daily_limit,
                }
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise ValidationFailed(
                f"Shifted, promotion {old.id} is no longer valid ({problems}).", field="shift_days"
            ) from exc
        copy = _new_promotion(data)
        session.add(copy)
        copies[old.id] = copy
    await session.flush()
    return {old_id: copy.id for old_id, copy in copies.items()}


# -- Redis -----------------------------------------------------------------------------


def terms_of(promotion: Promotion, campaign: Campaign | None = None) -> PromotionTerms:
    """The terms promotion.lua decides on; `held` from `campaign` (else the promotion's
    own) not being approved."""
    owner = campaign if campaign is not None else promotion.campaign
    return PromotionTerms(
        promotion_id=promotion.id,
        starts_at=promotion.starts_at,
        ends_at=promotion.ends_at,
        daily_limit=promotion.daily_limit,
        per_user_daily_limit=promotion.per_user_daily_limit,
        held=owner is not None and not owner.approved,
    )


async def publish_promotions(
    *,
    session: AsyncSession,
    services: Container,
    promotions: Sequence[Promotion],
    campaign: Campaign | None = None,
) -> int:
    """Load the promotions into Redis; returns how many had their counters built (the
    family's rules: app/generations/service.publish_counters; a lost one is rebuilt with
    `rebuild_promotion`)."""
    by_id = {promotion.id: promotion for promotion in promotions}
    prefix = services.settings.redis_key_prefix

    async def load(promotion_id: int, build: Build) -> Built:
        return await load_promotion(
            redis=services.redis,
            scripts=services.scripts,
            keys=PromotionKeys(prefix, promotion_id),
            terms=terms_of(by_id[promotion_id], campaign),
            build=build,
        )

    return await publish_counters(
        session=session,
        sessionmaker=services.sessionmaker,
        redis=services.redis,
        family=PROMOTIONS,
        ids=list(by_id),
        load=load,
        hash_key=lambda promotion_id: PromotionKeys(prefix, promotion_id).promotion,
    )


async def publish_promotions_or_defer(
    *, session: AsyncSession, services: Container, promotions: Sequence[Promotion]
) -> None:
    """After the promotion's commit. If Redis fails now, the hot-store check loads it."""
    try:
        await publish_promotions(session=session, services=services, promotions=promotions)
    except RedisError:
        logger.warning(
            "promotions %s saved but not loaded into Redis; the hot-store check loads them",
            [p.id for p in promotions],
            exc_info=True,
        )


async def put_campaign_in_force(
    *, session: AsyncSession, services: Container, campaign: Campaign
) -> None:
    """Re-apply every promotion of the campaign into Redis, `held` from its status as this
    session has it (the caller approves, calls this, then commits). Until the commit,
    checkouts still find the campaign unapproved in Postgres and take nothing of it; if
    the commit fails, Postgres still says unapproved, and no checkout looks further."""
    promotions = await repository.of_campaign(session, campaign.id)
    if promotions:
        await publish_promotions(
            session=session, services=services, promotions=promotions, campaign=campaign
        )


async def release_approved(*, services: Container) -> list[int]:
    """Promotions of an approved campaign that Redis still holds (the approval put them
    in force, then a rebuild that read Postgres before its commit held them again) are
    released: their terms loaded again from Postgres. The worker's terms check runs it."""
    prefix = services.settings.redis_key_prefix
    async with services.sessionmaker() as session:
        approved = [
            p
            for p in await not_ended(session=session)
            if p.campaign is not None and p.campaign.approved
        ]
        if not approved:
            return []
        async with services.redis.pipeline(transaction=False) as pipe:
            for promotion in approved:
                pipe.hget(PromotionKeys(prefix, promotion.id).promotion, "held")
            held = await pipe.execute()
        stuck = [p for p, flag in zip(approved, held, strict=True) if flag == "1"]
        if stuck:
            logger.warning(
                "promotions %s of approved campaigns were held; released", [p.id for p in stuck]
            )
            await publish_promotions(session=session, services=services, promotions=stuck)
    return [p.id for p in stuck]


async def places_missing_in_redis(
    *, services: Container, promotions: Sequence[Promotion]
) -> set[int]:
    """Promotions whose places of today in Redis lack an order that Postgres has holding
    one: Redis came back from an older snapshot (a promotion has no stream to tell).
    Redis gets a place before Postgres stores its order, and gives one back only after
    Postgres has cancelled it; so an order found stored, then missing in Redis, then
    still not cancelled, was lost by Redis."""
    prefix = services.settings.redis_key_prefix
    today = {p.id: day_of(p, utc_now()) for p in promotions}
    async with services.sessionmaker() as session:
        stored = await repository.holding_on(session, today)
    if not stored:
        return set()
    ids = list(stored)
    async with services.redis.pipeline(transaction=False) as pipe:
        for promotion_id in ids:
            pipe.hkeys(PromotionKeys(prefix, promotion_id).day(today[promotion_id]).holders)
        in_redis = await pipe.execute()
    missing = {
        promotion_id: stored[promotion_id] - {str(o) for o in held}
        for promotion_id, held in zip(ids, in_redis, strict=True)
    }
    suspects = [order_id for orders in missing.values() for order_id in orders]
    if not suspects:
        return set()
    async with services.sessionmaker() as session:
        still = await repository.not_cancelled(session, suspects)
    return {promotion_id for promotion_id, orders in missing.items() if orders & still}


def days_to_rebuild(promotion: Promotion, now: datetime) -> list[date]:
    """The days a checkout may be taking places on around `now`: today, and either side of
    it for an API process whose clock is a little off at midnight."""
    today = day_of(promotion, now)
    return [today - timedelta(days=1), today, today + timedelta(days=1)]


async def rebuild_promotion(*, services: Container, promotion: Promotion) -> Built:
    """Replace a frozen promotion's counters from Postgres. A checkout takes its place in
    Redis and commits its order afterwards, sharing the promotion's advisory lock in
    between; the rebuild takes that lock alone first, so it waits for every such checkout
    to commit (or roll back) and then reads them all. The read runs READ COMMITTED after
    the lock is granted: a REPEATABLE READ snapshot would be taken when the lock was
    asked for and miss what committed while waiting. The lock is held until the counters
    are in Redis: a cancel's give-back (which shares it too) lands on the new counters."""
    prefix = services.settings.redis_key_prefix
    async with services.sessionmaker() as session, session.begin():
        await repository.lock_places(session, promotion.id)
        fresh = await repository.get_promotion(session, promotion.id)
        current = fresh if fresh is not None else promotion
        days = days_to_rebuild(current, utc_now())
        holders = await repository.holders(session, promotion.id, days)
        min_epoch = (await generations.built_epochs(session, PROMOTIONS, [promotion.id])).get(
            promotion.id, 0
        )
        outcome = await load_promotion(
            redis=services.redis,
            scripts=services.scripts,
            keys=PromotionKeys(prefix, promotion.id),
            terms=terms_of(current),
            days=[
                DayHolders(
                    day=day,
                    expires_at=day_keys_expire_at(current, day),
                    holders={h.order_id: h.user_id for h in holders if h.day == day},
                )
                for day in days
            ],
            build=Build.REBUILD,
            min_epoch=min_epoch,
        )
    if outcome.written:
        await remember_built(services.sessionmaker, PROMOTIONS, {promotion.id: outcome.epoch})
    return outcome
