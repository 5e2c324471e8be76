from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.campaigns.models import Campaign
from app.coupons.pricing import CouponKind
from app.db import Base

MONEY = Numeric(12, 2)


class Audience(StrEnum):
    ALL = "all"
    NEW_USERS = "new_users"  # users with no paid order yet
    MEMBERS = "members"  # tokens with `member: true`


class UserCouponStatus(StrEnum):
    AVAILABLE = "available"
    USED = "used"  # redeemed on an order (user_coupons.order_id)
    EXPIRED = "expired"  # never stored: available but past valid_until


class CouponSource(StrEnum):
    CLAIM = "claim"  # claimed by the user (claim.lua -> stream -> order writer)
    GRANT = "grant"  # granted by an operator's bulk grant job
    PRIZE = "prize"  # a lottery prize paid out (app/lottery/payouts.py)


_KINDS = ", ".join(f"'{k}'" for k in CouponKind)
_AUDIENCES = ", ".join(f"'{a}'" for a in Audience)


class Coupon(Base):
    """A coupon template: its terms, who may claim it, when, and how many."""

    __tablename__ = "coupons"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_KINDS})", name="kind_known"),
        CheckConstraint(f"audience IN ({_AUDIENCES})", name="audience_known"),
        CheckConstraint("claim_starts_at < claim_ends_at", name="claim_window_ordered"),
        CheckConstraint(
            "(valid_until IS NULL) <> (valid_days_after_claim IS NULL)", name="one_validity"
        ),
        CheckConstraint("total_quantity > 0", name="total_quantity_positive"),
        CheckConstraint("per_user_limit >= 1", name="per_user_limit_positive"),
        CheckConstraint("percent_off BETWEEN 1 AND 99", name="percent_off_range"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    amount_off: Mapped[Decimal | None] = mapped_column(MONEY)
    percent_off: Mapped[int | None] = mapped_column(Integer)
    max_discount: Mapped[Decimal | None] = mapped_column(MONEY)
    # [{"min_spend": "200.00", "amount_off": "20.00"}, ...] for a tiered coupon.
    tiers: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    min_spend: Mapped[Decimal | None] = mapped_column(MONEY)
    scope_skus: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))
    scope_categories: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))
    audience: Mapped[str] = mapped_column(String(20))
    claim_starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claim_ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    valid_days_after_claim: Mapped[int | None] = mapped_column(Integer)
    total_quantity: Mapped[int] = mapped_column(Integer)
    per_user_limit: Mapped[int] = mapped_column(Integer)
    # The campaign it belongs to (None: its own): claimed by nobody, and shown to nobody,
    # until the campaign is approved. `phase`: the campaign phase its claim window is.
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), index=True)
    phase: Mapped[str | None] = mapped_column(String(20))
    # Not usable on an order before this (a warm-up coupon claimed early, used at the peak).
    valid_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    campaign: Mapped[Campaign | None] = relationship(lazy="selectin")

    @property
    def held(self) -> bool:
        """Its campaign is not approved: nobody sees or claims it."""
        return self.campaign is not None and not self.campaign.approved


class UserCoupon(Base):
    """A coupon in a user's hands: claimed, or granted by an operator."""

    __tablename__ = "user_coupons"
    __table_args__ = (
        CheckConstraint("status IN ('available', 'used')", name="status_known"),
        CheckConstraint("source IN ('claim', 'grant', 'prize')", name="source_known"),
        CheckConstraint("(status = 'used') = (order_id IS NOT NULL)", name="used_on_an_order"),
        CheckConstraint("(source = 'grant') = (job_id IS NOT NULL)", name="grant_has_a_job"),
        Index("ix_user_coupons_user_id_id", "user_id", text("id DESC")),
        # A grant gives each user one coupon, however often it is retried.
        Index("uq_user_coupons_job_id_user_id", "job_id", "user_id", unique=True),
        # An order uses at most one coupon.
        Index(
            "uq_user_coupons_order_id",
            "order_id",
            unique=True,
            postgresql_where=text("order_id IS NOT NULL"),
        ),
    )

    # A ULID then `-` and the template id (app/seckill/order_ids.py), like order ids.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(10))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
