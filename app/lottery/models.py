"""A lottery, its prizes, every draw, every win and its payout, and daily check-ins."""

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base


class PrizeKind(StrEnum):
    COUPON = "coupon"  # one coupon of `coupon_id`, through the coupons' user_coupons
    POINTS = "points"  # `points` points (app/lottery/payouts.py pay_points)
    ITEM = "item"  # a thing shipped by hand: waits for an operator's approval


class WinStatus(StrEnum):
    PENDING = "pending"  # coupon / points: waiting for the payout job
    PENDING_APPROVAL = "pending_approval"  # item: waiting for an operator
    PAID = "paid"  # paid out (an approved item: fulfilled)
    REJECTED = "rejected"  # an item the operator refused: never paid


_KINDS = ", ".join(f"'{k}'" for k in PrizeKind)
_STATUSES = ", ".join(f"'{s}'" for s in WinStatus)


class Lottery(Base):
    __tablename__ = "lotteries"
    __table_args__ = (
        CheckConstraint("starts_at < ends_at", name="window_ordered"),
        CheckConstraint("draws_per_user_per_day >= 1", name="draws_per_day_positive"),
        CheckConstraint("no_prize_weight >= 0", name="no_prize_weight_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    draws_per_user_per_day: Mapped[int] = mapped_column(Integer)
    # The weight of drawing nothing, beside the prizes' weights.
    no_prize_weight: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    prizes: Mapped[list["LotteryPrize"]] = relationship(
        order_by="LotteryPrize.position", lazy="selectin"
    )


class LotteryPrize(Base):
    __tablename__ = "lottery_prizes"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_KINDS})", name="kind_known"),
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint("weight >= 0", name="weight_not_negative"),
        CheckConstraint("(kind = 'coupon') = (coupon_id IS NOT NULL)", name="coupon_has_a_coupon"),
        CheckConstraint("(kind = 'points') = (points IS NOT NULL)", name="points_has_points"),
        CheckConstraint("points IS NULL OR points >= 1", name="points_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    lottery_id: Mapped[int] = mapped_column(ForeignKey("lotteries.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    coupon_id: Mapped[int | None] = mapped_column(ForeignKey("coupons.id"))
    points: Mapped[int | None] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    weight: Mapped[int] = mapped_column(Integer)


class LotteryDraw(Base):
    """Every draw, won or not (lottery_draw.lua -> draws stream -> order writer): what a
    rebuild counts each user's draws of a day from."""

    __tablename__ = "lottery_draws"
    __table_args__ = (Index("ix_lottery_draws_lottery_id_day", "lottery_id", "day"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    lottery_id: Mapped[int] = mapped_column(ForeignKey("lotteries.id"))
    user_id: Mapped[str] = mapped_column(String(128))
    day: Mapped[date] = mapped_column(Date)
    prize_id: Mapped[int | None] = mapped_column(ForeignKey("lottery_prizes.id"))
    drawn_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LotteryWin(Base):
    """A won prize and its payout: one row per winning draw (its id is the draw's), paid
    at most once (status moves from pending once, in the payout's own transaction)."""

    __tablename__ = "lottery_wins"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUSES})", name="status_known"),
        CheckConstraint("(status = 'paid') = (paid_at IS NOT NULL)", name="paid_has_a_time"),
        Index("ix_lottery_wins_user_id_won_at", "user_id", "won_at"),
        Index("ix_lottery_wins_lottery_id_status", "lottery_id", "status"),
    )

    id: Mapped[str] = mapped_column(ForeignKey("lottery_draws.id"), primary_key=True)
    lottery_id: Mapped[int] = mapped_column(ForeignKey("lotteries.id"))
    prize_id: Mapped[int] = mapped_column(ForeignKey("lottery_prizes.id"))
    user_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(20))
    won_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What was paid: the coupon given (coupon prizes), the points (points prizes).
    user_coupon_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    points_paid: Mapped[int | None] = mapped_column(Integer)
    decided_by: Mapped[str | None] = mapped_column(String(128))  # item: the operator

    prize: Mapped[LotteryPrize] = relationship(lazy="joined")


class CheckIn(Base):
    """One check-in a day per user (days in `business_timezone`); `streak`: consecutive
    days up to this one."""

    __tablename__ = "check_ins"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    streak: Mapped[int] = mapped_column(Integer)
    checked_in_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
