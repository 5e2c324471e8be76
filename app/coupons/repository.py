"""Every SQL statement of the coupons domain."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.models import Campaign, CampaignStatus
from app.coupons.models import Coupon, CouponSource, UserCoupon
from app.store.records import NewClaim


async def insert_coupon(session: AsyncSession, **values: Any) -> Coupon:
    coupon = Coupon(**values)
    session.add(coupon)
    await session.flush()
    return coupon


async def get_coupon(session: AsyncSession, coupon_id: int) -> Coupon | None:
    return await session.get(Coupon, coupon_id)


async def get_coupons(session: AsyncSession, coupon_ids: Iterable[int]) -> dict[int, Coupon]:
    ids = list(set(coupon_ids))
    if not ids:
        return {}
    rows = await session.scalars(select(Coupon).where(Coupon.id.in_(ids)))
    return {c.id: c for c in rows}


async def campaign_coupons(session: AsyncSession, campaign_id: int) -> Sequence[Coupon]:
    rows = await session.scalars(
        select(Coupon).where(Coupon.campaign_id == campaign_id).order_by(Coupon.id)
    )
    return rows.all()


async def list_claimable(
    session: AsyncSession,
    *,
    now: datetime,
    limit: int,
    offset: int,
    shown_to_shoppers: bool = False,
) -> Sequence[Coupon]:
    """Templates whose claim window has not closed: claimable now or later (for
    shoppers: none of a campaign not approved)."""
    query = select(Coupon)
    if shown_to_shoppers:
        approved = select(Campaign.id).where(Campaign.status == CampaignStatus.APPROVED)
        query = query.where(or_(Coupon.campaign_id.is_(None), Coupon.campaign_id.in_(approved)))
    rows = await session.scalars(
        query.where(Coupon.claim_ends_at > now)
        .order_by(Coupon.claim_starts_at, Coupon.id)
        .limit(limit)
        .offset(offset)
    )
    return rows.all()


async def claimed_counts(session: AsyncSession, coupon_ids: Iterable[int]) -> dict[int, int]:
    """Stored claims (not grants) per template."""
    ids = list(coupon_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(UserCoupon.coupon_id, func.count())
        .where(UserCoupon.coupon_id.in_(ids), UserCoupon.source == CouponSource.CLAIM.value)
        .group_by(UserCoupon.coupon_id)
    )
    found = {coupon_id: int(n) for coupon_id, n in rows}
    return {i: found.get(i, 0) for i in ids}


async def claims_by_user(session: AsyncSession, coupon_id: int) -> dict[str, int]:
    rows = await session.execute(
        select(UserCoupon.user_id, func.count())
        .where(UserCoupon.coupon_id == coupon_id, UserCoupon.source == CouponSource.CLAIM.value)
        .group_by(UserCoupon.user_id)
    )
    return {user_id: int(n) for user_id, n in rows}


async def newest_claim_by_coupon(
    session: AsyncSession, coupon_ids: Iterable[int]
) -> dict[int, datetime]:
    """When the newest stored claim (not grant) of each template was made (Redis's clock,
    claim.lua); templates with none are left out."""
    ids = list(coupon_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(UserCoupon.coupon_id, func.max(UserCoupon.claimed_at))
        .where(UserCoupon.coupon_id.in_(ids), UserCoupon.source == CouponSource.CLAIM.value)
        .group_by(UserCoupon.coupon_id)
    )
    return {int(coupon_id): newest for coupon_id, newest in rows}


async def stored_claim_ids(session: AsyncSession, claim_ids: Iterable[str]) -> set[str]:
    ids = list(claim_ids)
    if not ids:
        return set()
    rows = await session.scalars(
        text("SELECT id FROM user_coupons WHERE id = ANY(CAST(:ids AS text[]))"), {"ids": ids}
    )
    return set(rows.all())


# One statement per batch, as for orders: a re-delivered claim hits ON CONFLICT (id).
_INSERT_CLAIMS = text(
    """
    INSERT INTO user_coupons (id, coupon_id, user_id, status, source, idempotency_key,
                              claimed_at, valid_until)
    SELECT id, coupon_id, user_id, 'available', 'claim', idem, claimed_at, valid_until
    FROM unnest(
        CAST(:ids AS text[]), CAST(:coupon_ids AS bigint[]), CAST(:user_ids AS text[]),
        CAST(:idempotency_keys AS text[]), CAST(:claimed_ats AS timestamptz[]),
        CAST(:valid_untils AS timestamptz[])
    ) AS t(id, coupon_id, user_id, idem, claimed_at, valid_until)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
    """
)


async def insert_claims(session: AsyncSession, claims: Sequence[NewClaim]) -> int:
    """Store claimed coupons; returns how many were new (the rest were stored before)."""
    if not claims:
        return 0
    result = await session.scalars(
        _INSERT_CLAIMS,
        {
            "ids": [c.id for c in claims],
            "coupon_ids": [c.coupon_id for c in claims],
            "user_ids": [c.user_id for c in claims],
            "idempotency_keys": [c.idempotency_key for c in claims],
            "claimed_ats": [c.claimed_at for c in claims],
            "valid_untils": [c.valid_until for c in claims],
        },
    )
    return len(result.all())


async def list_user_coupons(
    session: AsyncSession, *, user_id: str, limit: int, offset: int
) -> Sequence[UserCoupon]:
    rows = await session.scalars(
        select(UserCoupon)
        .where(UserCoupon.user_id == user_id)
        .order_by(UserCoupon.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return rows.all()


async def get_user_coupon(session: AsyncSession, user_coupon_id: str) -> UserCoupon | None:
    return await session.get(UserCoupon, user_coupon_id, populate_existing=True)


async def use_coupon(
    session: AsyncSession, *, user_coupon_id: str, user_id: str, order_id: str
) -> bool:
    """Redeem: available -> used on this order, if it is the user's and still valid. One
    conditional UPDATE: of two checkouts racing for one coupon, exactly one gets it."""
    used = await session.scalar(
        text(
            """
            UPDATE user_coupons
            SET status = 'used', order_id = :order_id, used_at = now()
            WHERE id = :id AND user_id = :user_id AND status = 'available'
              AND valid_until > now()
            RETURNING id
            """
        ),
        {"id": user_coupon_id, "user_id": user_id, "order_id": order_id},
    )
    return used is not None


async def give_back(session: AsyncSession, order_ids: Sequence[str]) -> list[str]:
    """The coupons used on these (cancelled) orders become available again; returns
    their ids. Only coupons still `used` on these orders move, so a repeat moves none."""
    if not order_ids:
        return []
    rows = await session.scalars(
        text(
            """
            UPDATE user_coupons
            SET status = 'available', order_id = NULL, used_at = NULL
            WHERE order_id = ANY(CAST(:ids AS text[])) AND status = 'used'
            RETURNING id
            """
        ),
        {"ids": list(order_ids)},
    )
    return list(rows.all())


async def has_paid_order(session: AsyncSession, user_id: str) -> bool:
    """Has the user ever paid for an order (a refunded order was paid too)?"""
    found = await session.scalar(
        text("SELECT EXISTS (SELECT 1 FROM orders WHERE user_id = :u AND paid_at IS NOT NULL)"),
        {"u": user_id},
    )
    return bool(found)


# -- grants ------------------------------------------------------------------------------

_INSERT_GRANTS = text(
    """
    INSERT INTO user_coupons (id, coupon_id, user_id, status, source, job_id,
                              claimed_at, valid_until)
    SELECT id, :coupon_id, user_id, 'available', 'grant', :job_id, now(), :valid_until
    FROM unnest(CAST(:ids AS text[]), CAST(:user_ids AS text[])) AS t(id, user_id)
    ON CONFLICT (job_id, user_id) DO NOTHING
    RETURNING id
    """
)


async def insert_grants(
    session: AsyncSession,
    *,
    job_id: int,
    coupon_id: int,
    ids: Sequence[str],
    user_ids: Sequence[str],
    valid_until: datetime,
) -> int:
    """Grant one coupon to each user; a user this grant reached before gets nothing more
    (unique (job_id, user_id)). Returns how many were new."""
    if not user_ids:
        return 0
    rows = await session.scalars(
        _INSERT_GRANTS,
        {
            "coupon_id": coupon_id,
            "job_id": job_id,
            "ids": list(ids),
            "user_ids": list(user_ids),
            "valid_until": valid_until,
        },
    )
    return len(rows.all())


_INSERT_PRIZE_COUPON = text(
    """
    INSERT INTO user_coupons (id, coupon_id, user_id, status, source, claimed_at, valid_until)
    VALUES (:id, :coupon_id, :user_id, 'available', 'prize', now(), :valid_until)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
    """
)


async def insert_prize_coupon(
    session: AsyncSession, *, id: str, coupon_id: int, user_id: str, valid_until: datetime
) -> bool:
    """One coupon paid out for a lottery win; its id is the win's own (a retried payout
    inserts nothing). True if new."""
    new = await session.scalar(
        _INSERT_PRIZE_COUPON,
        {"id": id, "coupon_id": coupon_id, "user_id": user_id, "valid_until": valid_until},
    )
    return new is not None


async def buyers_of_event(session: AsyncSession, event_id: int) -> list[str]:
    """Every user with a stored order of the event, whatever its status."""
    rows = await session.scalars(
        text("SELECT DISTINCT user_id FROM orders WHERE event_id = :e ORDER BY user_id"),
        {"e": event_id},
    )
    return list(rows.all())


# -- the audit ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CouponBooks:
    coupon_id: int
    total_quantity: int
    per_user_limit: int
    claimed: int  # stored claims
    over_limit: list[tuple[str, int]]  # (user, claims) above per_user_limit


async def coupon_books(session: AsyncSession, coupon_ids: Sequence[int]) -> list[CouponBooks]:
    coupons = await get_coupons(session, coupon_ids)
    claimed = await claimed_counts(session, coupon_ids)
    rows = await session.execute(
        text(
            """
            SELECT u.coupon_id, u.user_id, count(*) AS n
            FROM user_coupons AS u JOIN coupons AS c ON c.id = u.coupon_id
            WHERE u.coupon_id = ANY(CAST(:ids AS bigint[])) AND u.source = 'claim'
            GROUP BY u.coupon_id, u.user_id, c.per_user_limit
            HAVING count(*) > c.per_user_limit
            ORDER BY u.coupon_id, u.user_id
            """
        ),
        {"ids": list(coupon_ids)},
    )
    over: dict[int, list[tuple[str, int]]] = {}
    for coupon_id, user_id, n in rows:
        over.setdefault(coupon_id, []).append((user_id, int(n)))
    return [
        CouponBooks(
            coupon_id=c.id,
            total_quantity=c.total_quantity,
            per_user_limit=c.per_user_limit,
            claimed=claimed.get(c.id, 0),
            over_limit=over.get(c.id, []),
        )
        for c in coupons.values()
    ]


async def all_coupon_ids(session: AsyncSession) -> list[int]:
    rows = await session.scalars(select(Coupon.id).order_by(Coupon.id))
    return list(rows.all())


@dataclass(frozen=True, slots=True)
class MisusedCoupon:
    user_coupon_id: str
    order_id: str | None
    problem: str


# A used coupon must sit on exactly one order of its owner that is live (pending, paid or
# shipped: app.orders.models, a layer above, names them) or whose return is still owed
# (cancelled/refunded, stock_returned_at empty); an order that names a coupon must hold
# it unless its return is done (then the coupon is back).
_MISUSED = text(
    """
    SELECT u.id, u.order_id, 'used on an order that does not exist' AS problem
    FROM user_coupons AS u LEFT JOIN orders AS o ON o.id = u.order_id
    WHERE u.status = 'used' AND o.id IS NULL
    UNION ALL
    SELECT u.id, u.order_id, 'used on another user''s order'
    FROM user_coupons AS u JOIN orders AS o ON o.id = u.order_id
    WHERE u.status = 'used' AND o.user_id <> u.user_id
    UNION ALL
    SELECT u.id, u.order_id, 'used on an order that names another coupon'
    FROM user_coupons AS u JOIN orders AS o ON o.id = u.order_id
    WHERE u.status = 'used' AND o.coupon_id IS DISTINCT FROM u.id
    UNION ALL
    SELECT u.id, u.order_id, 'still used on a cancelled order whose return is done'
    FROM user_coupons AS u JOIN orders AS o ON o.id = u.order_id
    WHERE u.status = 'used' AND o.status IN ('cancelled', 'refunded')
      AND o.stock_returned_at IS NOT NULL
    UNION ALL
    SELECT o.coupon_id, o.id, 'a live order''s coupon is not used on it'
    FROM orders AS o LEFT JOIN user_coupons AS u ON u.id = o.coupon_id
    WHERE o.coupon_id IS NOT NULL AND o.status IN ('pending_payment', 'paid', 'shipped')
      AND (u.id IS NULL OR u.order_id IS DISTINCT FROM o.id)
    LIMIT :limit
    """
)


async def misused_coupons(session: AsyncSession, *, limit: int) -> list[MisusedCoupon]:
    rows = await session.execute(_MISUSED, {"limit": limit})
    return [MisusedCoupon(user_coupon_id=r[0], order_id=r[1], problem=r[2]) for r in rows]
