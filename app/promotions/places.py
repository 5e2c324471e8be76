"""A checkout's promotion: which one an order qualifies for, its place among the day's
first N taken in Redis (promotion.lua), and given back by a cancel (promotion_release.lua).

The place is taken inside the checkout's transaction, once its SKU rows are locked and
before its order is written, with the promotion's advisory lock shared until the commit
(see service.rebuild_promotion for why). A checkout refused after taking it (no stock, a
repeated Idempotency-Key) gives it back at once. Only a failed commit leaves a place
taken for no order: the day has one place fewer (never one too many) until the promotion
is next rebuilt."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import User
from app.container import Container
from app.errors import Recovering
from app.promotions import repository, service
from app.promotions.models import Promotion
from app.promotions.schemas import AppliedPromotion
from app.store.freezes import FROZEN_RETRY_AFTER_SECONDS
from app.store.promotion import (
    PromotionOutcome,
    PromotionReply,
    promotion_script_call,
    run_promotion,
)
from app.store.promotion_keys import PromotionKeys
from app.store.promotion_release import promotion_release_script_call, run_promotion_release

logger = logging.getLogger(__name__)
ZERO = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class BasketLine:
    """An order's line as a promotion's scope and threshold see it."""

    sku: str
    category: str | None
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Offer:
    """A promotion an order qualifies for (its place not necessarily taken)."""

    promotion: Promotion
    day: date
    eligible_subtotal: Decimal
    discount: Decimal  # amount_off, never more than the eligible subtotal
    eligible_skus: frozenset[str]

    @property
    def applied(self) -> AppliedPromotion:
        return AppliedPromotion.model_validate(self.promotion)


def offer_of(promotion: Promotion, lines: Sequence[BasketLine], now: datetime) -> Offer | None:
    """The promotion's offer on these lines: None if no line is in its scope or their
    subtotal is below its min_spend."""
    eligible = [line for line in lines if promotion.covers(line.sku, line.category)]
    subtotal = sum((line.amount for line in eligible), ZERO)
    if subtotal <= 0 or subtotal < promotion.min_spend:
        return None
    return Offer(
        promotion=promotion,
        day=service.day_of(promotion, now),
        eligible_subtotal=subtotal,
        discount=min(promotion.amount_off, subtotal),
        eligible_skus=frozenset(line.sku for line in eligible),
    )


async def _offers(session: AsyncSession, lines: Sequence[BasketLine], now: datetime) -> list[Offer]:
    offers = (offer_of(p, lines, now) for p in await repository.active(session, now=now))
    return [offer for offer in offers if offer is not None]


def _recovering(promotion_id: int) -> Recovering:
    return Recovering(
        f"Promotion {promotion_id} is held while the hot store is rebuilt after a fault; "
        "nothing was taken. Retry later.",
        retry_after_seconds=FROZEN_RETRY_AFTER_SECONDS,
    )


async def _decide(
    *,
    session: AsyncSession,
    services: Container,
    offer: Offer,
    user: User,
    order_id: str,
    take: bool,
) -> PromotionReply:
    promotion = offer.promotion
    keys = PromotionKeys(services.settings.redis_key_prefix, promotion.id)
    seen = services.promotion_generations

    async def run() -> PromotionReply:
        call = promotion_script_call(
            keys=keys,
            day=offer.day,
            expires_at=service.day_keys_expire_at(promotion, offer.day),
            user_id=user.id,
            order_id=order_id,
            seen=seen.known(promotion.id),
            take=take,
        )
        return await run_promotion(services.redis, services.scripts, call)

    reply = await run()
    if reply.outcome is PromotionOutcome.NO_SUCH_PROMOTION and not seen.has_seen(promotion.id):
        # Never loaded here yet (its load after the commit failed, or Redis is new): load
        # it, which freezes it instead if it was built before and lost.
        await service.publish_promotions(session=session, services=services, promotions=[promotion])
        reply = await run()
    if reply.outcome is PromotionOutcome.NO_SUCH_PROMOTION:
        # In force a moment ago: Redis lost it, not the shop.
        return replace(reply, outcome=PromotionOutcome.RECOVERING)
    if reply.outcome is PromotionOutcome.TAKEN and take:
        seen.saw(promotion.id, reply.generation)
    return reply


async def quote_offer(
    *,
    session: AsyncSession,
    services: Container,
    user: User,
    lines: Sequence[BasketLine],
    now: datetime,
) -> Offer | None:
    """The promotion an order of these lines would take now (nothing is taken)."""
    for offer in await _offers(session, lines, now):
        reply = await _decide(
            session=session, services=services, offer=offer, user=user, order_id="", take=False
        )
        if reply.outcome is PromotionOutcome.RECOVERING:
            raise _recovering(offer.promotion.id)
        if reply.outcome is PromotionOutcome.TAKEN:
            return offer
    return None


async def take_place(
    *,
    session: AsyncSession,
    services: Container,
    user: User,
    order_id: str,
    lines: Sequence[BasketLine],
    now: datetime,
) -> Offer | None:
    """Take a place for the order in the first promotion (largest amount off first) that
    it qualifies for and that has one left for this user today; None if none has. A
    frozen promotion the order qualifies for refuses the checkout (503 recovering,
    nothing taken): it may have places left, and only its rebuild knows."""
    for offer in await _offers(session, lines, now):
        await repository.share_places_lock(session, [offer.promotion.id])
        reply = await _decide(
            session=session, services=services, offer=offer, user=user, order_id=order_id, take=True
        )
        if reply.outcome is PromotionOutcome.RECOVERING:
            raise _recovering(offer.promotion.id)
        if reply.outcome in (PromotionOutcome.TAKEN, PromotionOutcome.REPLAYED):
            return offer
    return None


@dataclass(frozen=True, slots=True)
class HeldPlace:
    """An order holding (or having held) a promotion's place."""

    order_id: str
    promotion_id: int
    day: date


async def give_back(
    *, session: AsyncSession, services: Container, places: Sequence[HeldPlace]
) -> int:
    """Give these cancelled orders' places back to their days, each at most once (the
    order leaves the day's holders); returns how many came back. Shares the promotions'
    advisory locks, so a rebuild reads Postgres before this transaction or after its
    commit, never in between. A failed Redis call raises: the caller's transaction rolls
    back and its retry gives the place back."""
    if not places:
        return 0
    await repository.share_places_lock(session, [p.promotion_id for p in places])
    prefix = services.settings.redis_key_prefix
    given = 0
    for place in places:
        call = promotion_release_script_call(
            keys=PromotionKeys(prefix, place.promotion_id), day=place.day, order_id=place.order_id
        )
        reply = await run_promotion_release(services.redis, services.scripts, call)
        given += reply.given_back
    return given


async def give_back_now(*, services: Container, place: HeldPlace) -> None:
    """A checkout that failed after taking its place gives it back before it rolls back
    (it still shares the lock). A Redis failure here leaves the day one place short until
    the promotion is rebuilt, never one over."""
    try:
        call = promotion_release_script_call(
            keys=PromotionKeys(services.settings.redis_key_prefix, place.promotion_id),
            day=place.day,
            order_id=place.order_id,
        )
        await run_promotion_release(services.redis, services.scripts, call)
    except RedisError:
        logger.warning("order %s: promotion place not given back", place.order_id, exc_info=True)
