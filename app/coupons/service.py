"""Coupon templates, their claim state in Redis, the caller's coupons, redemption.
Never commits: the router (or the checkout's transaction) owns it.

A claim is the coupon's own flash sale: claim.lua decides it in Redis and appends it to
the coupon's claim stream, which the order writer stores in Postgres, as it stores an
item's orders."""

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from functools import partial

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import User
from app.campaigns import service as campaigns
from app.container import Container
from app.coupons import repository
from app.coupons.errors import AudienceMismatch, CouponExhausted, CouponNotFound, not_applicable
from app.coupons.models import Audience, Coupon, UserCoupon, UserCouponStatus
from app.coupons.pricing import CouponKind, CouponTerms, Refusal, Tier, to_cents
from app.coupons.schemas import (
    KIND_FIELDS,
    ClaimRead,
    CouponCreate,
    CouponRead,
    ScopeRead,
    TierRead,
    UserCouponRead,
)
from app.db import after_commit
from app.errors import (
    AppError,
    Ended,
    LimitExceeded,
    NotStarted,
    Recovering,
    ValidationFailed,
)
from app.generations import repository as generations
from app.generations.service import publish_counters, remember_built
from app.metrics import coupon_claims, coupon_redemptions
from app.moments import utc_now
from app.redis import RedisClient, as_text
from app.store.claim import ClaimOutcome, ClaimReply, claim_script_call, run_claim
from app.store.coupon_keys import CouponKeys
from app.store.coupon_warmup import CouponClaimTerms, load_claims
from app.store.freezes import FROZEN_RETRY_AFTER_SECONDS
from app.store.order_ids import coupon_of, new_claim_id
from app.store.records import NewClaim, parse_claim, parse_queued_claim
from app.store.warmup import Build, Built

logger = logging.getLogger(__name__)


# -- templates ---------------------------------------------------------------------------


def _check_terms(data: CouponCreate) -> None:
    """Rules across fields, each refusal naming its field."""
    for name in KIND_FIELDS[data.kind]:
        if getattr(data, name) is None:
            raise ValidationFailed(f"a {data.kind.value} coupon needs `{name}`.", field=name)
    if (data.valid_until is None) == (data.valid_days_after_claim is None):
        raise ValidationFailed(
            "give exactly one of valid_until and valid_days_after_claim.", field="valid_until"
        )
    if data.valid_until is not None and data.valid_until <= utc_now():
        raise ValidationFailed("valid_until has already passed.", field="valid_until")
    if data.scope is not None and data.scope.skus is None and data.scope.categories is None:
        raise ValidationFailed(
            "a scope names skus, categories or both (leave it out for every SKU).",
            field="scope",
        )


def _cents(value: Decimal | None) -> Decimal | None:
    return None if value is None else to_cents(value)


async def create_coupon(
    *, session: AsyncSession, services: Container, data: CouponCreate
) -> Coupon:
    """Create a template; once committed, it is loaded into Redis (or, if Redis fails
    then, by the next warm-up)."""
    _check_terms(data)
    if data.campaign_id is not None:
        _, phase_window = await campaigns.part_of(
            session=session, campaign_id=data.campaign_id, what="coupons", phase=data.phase
        )
        claim_starts_at, claim_ends_at = phase_window or data.claim_window()
        if claim_ends_at <= utc_now():
            raise ValidationFailed(f"The {data.phase} phase has ended.", field="phase")
    else:
        claim_starts_at, claim_ends_at = data.claim_window()
    if data.valid_until is not None and data.valid_until <= claim_starts_at:
        raise ValidationFailed(
            "valid_until must be after the claim window opens.", field="valid_until"
        )
    coupon = await repository.insert_coupon(
        session,
        name=data.name,
        kind=data.kind.value,
        amount_off=_cents(data.amount_off),
        percent_off=data.percent_off,
        max_discount=_cents(data.max_discount),
        tiers=(
            None
            if data.tiers is None
            else [
                {"min_spend": str(to_cents(t.min_spend)), "amount_off": str(to_cents(t.amount_off))}
                for t in sorted(data.tiers, key=lambda t: t.min_spend)
            ]
        ),
        min_spend=_cents(data.min_spend),
        scope_skus=None if data.scope is None else data.scope.skus,
        scope_categories=None if data.scope is None else data.scope.categories,
        audience=data.audience.value,
        claim_starts_at=claim_starts_at,
        claim_ends_at=claim_ends_at,
        valid_until=data.valid_until,
        valid_days_after_claim=data.valid_days_after_claim,
        total_quantity=data.total_quantity,
        per_user_limit=data.per_user_limit,
        campaign_id=data.campaign_id,
        phase=data.phase,
        valid_from=data.valid_from,
    )
    # Its terms (held or not) are read after the commit, with no IO to load them then.
    await session.refresh(coupon, attribute_names=["campaign"])
    after_commit(
        session,
        partial(publish_coupons_or_defer, session=session, services=services, coupons=[coupon]),
    )
    return coupon


async def get_coupon_row(*, session: AsyncSession, coupon_id: int) -> Coupon:
    coupon = await repository.get_coupon(session, coupon_id)
    if coupon is None:
        raise CouponNotFound(f"No coupon {coupon_id}.")
    return coupon


def terms_of(coupon: Coupon) -> CouponTerms:
    """The template's terms for pricing."""
    return CouponTerms(
        kind=CouponKind(coupon.kind),
        amount_off=coupon.amount_off,
        percent_off=coupon.percent_off,
        max_discount=coupon.max_discount,
        tiers=tuple(
            Tier(min_spend=Decimal(t["min_spend"]), amount_off=Decimal(t["amount_off"]))
            for t in coupon.tiers or []
        ),
        min_spend=coupon.min_spend,
        scope_skus=None if coupon.scope_skus is None else frozenset(coupon.scope_skus),
        scope_categories=(
            None if coupon.scope_categories is None else frozenset(coupon.scope_categories)
        ),
    )


def _claim_terms(coupon: Coupon) -> CouponClaimTerms:
    return CouponClaimTerms(
        coupon_id=coupon.id,
        claim_starts_at=coupon.claim_starts_at,
        claim_ends_at=coupon.claim_ends_at,
        audience=coupon.audience,
        per_user_limit=coupon.per_user_limit,
        valid_until=coupon.valid_until,
        valid_days_after_claim=coupon.valid_days_after_claim,
        held=coupon.held,
    )


async def claims_in_stream(*, redis: RedisClient, prefix: str, coupon_id: int) -> list[NewClaim]:
    entries = await redis.xrange(CouponKeys(prefix, coupon_id).claims) or []
    parsed = (parse_claim({str(k): str(v) for k, v in (f or {}).items()}) for _i, f in entries)
    return [claim for claim in parsed if claim is not None]


CLAIMS = "claims"  # the counter family of a coupon's claims (app/generations)


async def publish_coupons(
    *, session: AsyncSession, services: Container, coupons: Sequence[Coupon]
) -> int:
    """Load the templates' claim state into Redis; returns how many had their counters
    built (the family's rules: app/generations/service.publish_counters; a lost one is
    rebuilt with `rebuild_claims`)."""
    by_id = {coupon.id: coupon for coupon in coupons}

    async def load(coupon_id: int, build: Build) -> Built:
        return await _load_claims(
            services=services, coupon=by_id[coupon_id], claimed_by_user={}, build=build, min_epoch=0
        )

    prefix = services.settings.redis_key_prefix
    return await publish_counters(
        session=session,
        sessionmaker=services.sessionmaker,
        redis=services.redis,
        family=CLAIMS,
        ids=list(by_id),
        load=load,
        hash_key=lambda coupon_id: CouponKeys(prefix, coupon_id).coupon,
    )


async def _load_claims(
    *,
    services: Container,
    coupon: Coupon,
    claimed_by_user: dict[str, int],
    build: Build,
    min_epoch: int,
) -> Built:
    return await load_claims(
        redis=services.redis,
        scripts=services.scripts,
        keys=CouponKeys(services.settings.redis_key_prefix, coupon.id),
        terms=_claim_terms(coupon),
        remaining=max(coupon.total_quantity - sum(claimed_by_user.values()), 0),
        group=services.settings.worker_group,
        claimed_by_user=claimed_by_user,
        build=build,
        min_epoch=min_epoch,
    )


async def rebuild_claims(*, services: Container, coupon: Coupon) -> Built:
    """Replace a frozen coupon's counters from one consistent picture: the claim stream
    first, then Postgres in one REPEATABLE READ snapshot taken after it (see
    events.service.rebuild_sale), so a claim the writer commits meanwhile is counted
    exactly once."""
    prefix = services.settings.redis_key_prefix
    in_flight = await claims_in_stream(redis=services.redis, prefix=prefix, coupon_id=coupon.id)
    async with services.sessionmaker() as session:
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        by_user = await repository.claims_by_user(session, coupon.id)
        stored = await repository.stored_claim_ids(session, [c.id for c in in_flight])
        min_epoch = (await generations.built_epochs(session, CLAIMS, [coupon.id])).get(coupon.id, 0)
    for claim in in_flight:
        if claim.id not in stored:
            by_user[claim.user_id] = by_user.get(claim.user_id, 0) + 1
    outcome = await _load_claims(
        services=services,
        coupon=coupon,
        claimed_by_user=by_user,
        build=Build.REBUILD,
        min_epoch=min_epoch,
    )
    if outcome.written:
        await remember_built(services.sessionmaker, CLAIMS, {coupon.id: outcome.epoch})
    return outcome


async def publish_coupons_or_defer(
    *, session: AsyncSession, services: Container, coupons: Sequence[Coupon]
) -> None:
    """After the template's commit. If Redis fails now, the next warm-up loads it."""
    try:
        await publish_coupons(session=session, services=services, coupons=coupons)
    except RedisError:
        logger.warning(
            "coupons %s saved but not loaded into Redis; the next warm-up loads them",
            [c.id for c in coupons],
            exc_info=True,
        )


async def claimable_coupons(*, session: AsyncSession) -> list[Coupon]:
    """Every template whose claim window has not closed."""
    coupons: list[Coupon] = []
    while page := await repository.list_claimable(
        session, now=utc_now(), limit=500, offset=len(coupons)
    ):
        coupons += page
    return coupons


async def warm_up(*, session: AsyncSession, services: Container) -> int:
    """At start-up: every template still claimable is in Redis."""
    coupons = await claimable_coupons(session=session)
    return await publish_coupons(session=session, services=services, coupons=coupons)


def _coupon_read(coupon: Coupon, remaining: int) -> CouponRead:
    scope = None
    if coupon.scope_skus is not None or coupon.scope_categories is not None:
        scope = ScopeRead(skus=coupon.scope_skus, categories=coupon.scope_categories)
    return CouponRead(
        id=coupon.id,
        name=coupon.name,
        kind=CouponKind(coupon.kind),
        amount_off=coupon.amount_off,
        percent_off=coupon.percent_off,
        max_discount=coupon.max_discount,
        tiers=None if coupon.tiers is None else [TierRead(**t) for t in coupon.tiers],
        min_spend=coupon.min_spend,
        scope=scope,
        audience=Audience(coupon.audience),
        claim_starts_at=coupon.claim_starts_at,
        claim_ends_at=coupon.claim_ends_at,
        valid_until=coupon.valid_until,
        valid_days_after_claim=coupon.valid_days_after_claim,
        total_quantity=coupon.total_quantity,
        per_user_limit=coupon.per_user_limit,
        remaining=max(remaining, 0),
        campaign_id=coupon.campaign_id,
        phase=coupon.phase,
        valid_from=coupon.valid_from,
    )


async def read_coupons(
    *, session: AsyncSession, services: Container, coupons: Sequence[Coupon]
) -> list[CouponRead]:
    """With `remaining` live from Redis; from Postgres where Redis does not have it."""
    prefix = services.settings.redis_key_prefix
    live: dict[int, int] = {}
    try:
        async with services.redis.pipeline(transaction=False) as pipe:
            for coupon in coupons:
                pipe.hget(CouponKeys(prefix, coupon.id).coupon, "remaining")
            values = await pipe.execute()
        live = {c.id: int(v) for c, v in zip(coupons, values, strict=True) if v is not None}
    except RedisError:
        logger.warning("Redis unavailable; coupons remaining read from Postgres", exc_info=True)
    missing = [c.id for c in coupons if c.id not in live]
    claimed = await repository.claimed_counts(session, missing)
    return [
        _coupon_read(c, live[c.id] if c.id in live else c.total_quantity - claimed.get(c.id, 0))
        for c in coupons
    ]


async def get_coupon(
    *, session: AsyncSession, services: Container, coupon_id: int, shopper: bool = False
) -> CouponRead:
    """The template; for a `shopper`, 404 while its campaign is not approved."""
    coupon = await get_coupon_row(session=session, coupon_id=coupon_id)
    if shopper and coupon.held:
        raise CouponNotFound(f"No coupon {coupon_id}.")
    return (await read_coupons(session=session, services=services, coupons=[coupon]))[0]


async def list_coupons(
    *, session: AsyncSession, services: Container, limit: int, offset: int
) -> list[CouponRead]:
    coupons = await repository.list_claimable(
        session, now=utc_now(), limit=limit, offset=offset, shown_to_shoppers=True
    )
    return await read_coupons(session=session, services=services, coupons=coupons)


# -- claiming ----------------------------------------------------------------------------


def _claim_refusal(outcome: ClaimOutcome, coupon_id: int) -> AppError:
    match outcome:
        case ClaimOutcome.NO_SUCH_COUPON:
            return CouponNotFound(f"No coupon {coupon_id} to claim.")
        case ClaimOutcome.NOT_STARTED:
            return NotStarted("The coupon's claim window has not opened; see GET /api/v1/time.")
        case ClaimOutcome.ENDED:
            return Ended("The coupon's claim window has closed, or the coupon is no longer valid.")
        case ClaimOutcome.AUDIENCE_MISMATCH:
            return AudienceMismatch(
                "This coupon is for another audience (new users or members only)."
            )
        case ClaimOutcome.LIMIT_EXCEEDED:
            return LimitExceeded("You already hold as many of these coupons as one user may.")
        case ClaimOutcome.EXHAUSTED:
            return CouponExhausted(f"No coupons of {coupon_id} are left to claim.")
        case ClaimOutcome.RECOVERING:
            return Recovering(
                f"Coupon {coupon_id} is held while the hot store is rebuilt after a fault; "
                "nothing was taken. Retry later with the same Idempotency-Key.",
                retry_after_seconds=FROZEN_RETRY_AFTER_SECONDS,
            )
    raise AssertionError(f"not a refusal: {outcome!r}")


async def _run_claim(
    *,
    services: Container,
    keys: CouponKeys,
    user: User,
    new_user: bool | None,
    idempotency_key: str | None,
) -> ClaimReply:
    call = claim_script_call(
        keys=keys,
        user_id=user.id,
        member=user.member,
        new_user=new_user,
        claim_id=new_claim_id(keys.coupon_id),
        idempotency_key=idempotency_key,
        idempotency_ttl_seconds=services.settings.idempotency_ttl_seconds,
        seen=services.claim_generations.known(keys.coupon_id),
    )
    reply = await run_claim(services.redis, services.scripts, call)
    if reply.outcome is ClaimOutcome.CLAIMED:
        services.claim_generations.saw(keys.coupon_id, reply.generation)
    elif reply.outcome is ClaimOutcome.NO_SUCH_COUPON and services.claim_generations.has_seen(
        keys.coupon_id
    ):
        # claimable a moment ago: Redis lost it, not the shop
        return replace(reply, outcome=ClaimOutcome.RECOVERING)
    return reply


async def claim(
    *,
    session: AsyncSession,
    services: Container,
    coupon_id: int,
    user: User,
    idempotency_key: str | None,
) -> ClaimRead:
    """One atomic decision in Redis (claim.lua); Postgres is asked only whether the user
    is new, and only for a new-users coupon."""
    keys = CouponKeys(services.settings.redis_key_prefix, coupon_id)

    async def attempt(new_user: bool | None) -> ClaimReply:
        return await _run_claim(
            services=services,
            keys=keys,
            user=user,
            new_user=new_user,
            idempotency_key=idempotency_key,
        )

    reply = await attempt(None)
    if reply.outcome is ClaimOutcome.ASK_WHO:
        new_user = not await repository.has_paid_order(session, user.id)
        await session.rollback()  # end the read: hold no connection
        reply = await attempt(new_user)
    coupon_claims.labels(reply.outcome.name.lower()).inc()
    if reply.outcome in (ClaimOutcome.CLAIMED, ClaimOutcome.REPLAYED):
        assert reply.valid_until is not None
        return ClaimRead(id=reply.claim_id, coupon_id=coupon_id, valid_until=reply.valid_until)
    raise _claim_refusal(reply.outcome, coupon_id)


# -- the caller's coupons ---------------------------------------------------------------


def status_of(coupon: UserCoupon, now: datetime) -> UserCouponStatus:
    if coupon.status == UserCouponStatus.USED.value:
        return UserCouponStatus.USED
    if coupon.valid_until <= now:
        return UserCouponStatus.EXPIRED
    return UserCouponStatus.AVAILABLE


def user_coupon_read(coupon: UserCoupon, now: datetime) -> UserCouponRead:
    return UserCouponRead(
        id=coupon.id,
        coupon_id=coupon.coupon_id,
        status=status_of(coupon, now),
        valid_until=coupon.valid_until,
        claimed_at=coupon.claimed_at,
        order_id=coupon.order_id,
    )


async def list_my_coupons(
    *, session: AsyncSession, user: User, limit: int, offset: int
) -> list[UserCouponRead]:
    rows = await repository.list_user_coupons(session, user_id=user.id, limit=limit, offset=offset)
    now = utc_now()
    return [user_coupon_read(r, now) for r in rows]


# -- redemption (checkout) -----------------------------------------------------------------


async def _store_if_queued(
    *, session: AsyncSession, services: Container, user_coupon_id: str
) -> None:
    """A claim answered a moment ago may not be stored yet: store it from its `queued`
    mark (ON CONFLICT DO NOTHING: the order writer storing it too is harmless)."""
    coupon_id = coupon_of(user_coupon_id)
    if coupon_id is None:
        return
    keys = CouponKeys(services.settings.redis_key_prefix, coupon_id)
    value = as_text(await services.redis.hget(keys.queued, user_coupon_id))
    if value is None:
        return
    queued = parse_queued_claim(user_coupon_id, coupon_id, value)
    if queued is not None and await repository.get_coupon(session, coupon_id) is not None:
        await repository.insert_claims(session, [queued])


async def coupon_for_checkout(
    *, session: AsyncSession, services: Container, user: User, user_coupon_id: str
) -> tuple[UserCoupon, CouponTerms]:
    """The caller's coupon and its terms, or 422 coupon_not_applicable saying why not."""
    found = await repository.get_user_coupon(session, user_coupon_id)
    if found is None:
        await _store_if_queued(session=session, services=services, user_coupon_id=user_coupon_id)
        found = await repository.get_user_coupon(session, user_coupon_id)
    if found is None or found.user_id != user.id:
        # Someone else's coupon is told apart from none only as "not yours".
        raise refuse(Refusal.NOT_YOURS, f"no coupon {user_coupon_id!r} of yours")
    match status_of(found, utc_now()):
        case UserCouponStatus.USED:
            raise refuse(Refusal.ALREADY_USED, f"on order {found.order_id}")
        case UserCouponStatus.EXPIRED:
            raise refuse(Refusal.EXPIRED, f"valid until {found.valid_until.isoformat()}")
    template = await get_coupon_row(session=session, coupon_id=found.coupon_id)
    if template.valid_from is not None and utc_now() < template.valid_from:
        raise refuse(Refusal.NOT_YET_VALID, f"usable from {template.valid_from.isoformat()}")
    return found, terms_of(template)


def refuse(reason: Refusal, more: str = "") -> AppError:
    coupon_redemptions.labels(reason.value).inc()
    return not_applicable(reason, more)


async def use_coupon(
    *, session: AsyncSession, user: User, user_coupon_id: str, order_id: str
) -> None:
    """Redeem in the caller's transaction; refuses if another checkout got there first or
    the coupon expired since it was read."""
    if await repository.use_coupon(
        session, user_coupon_id=user_coupon_id, user_id=user.id, order_id=order_id
    ):
        coupon_redemptions.labels("used").inc()
        return
    current = await repository.get_user_coupon(session, user_coupon_id)
    if current is not None and current.status == UserCouponStatus.AVAILABLE.value:
        raise refuse(Refusal.EXPIRED, f"valid until {current.valid_until.isoformat()}")
    raise refuse(Refusal.ALREADY_USED)


async def give_back(*, session: AsyncSession, order_ids: Sequence[str]) -> int:
    """In the transaction that books a cancelled order's return: its coupon is available
    again (shown `expired` if its validity has passed meanwhile)."""
    back = await repository.give_back(session, order_ids)
    if back:
        coupon_redemptions.labels("given_back").inc(len(back))
    return len(back)
