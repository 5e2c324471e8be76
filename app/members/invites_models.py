"""Invitations: each user's one invite code (`invite_codes`), and each accepted invite
(`invites`, one per invitee) with the state of its reward."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column

from app.auth import MAX_USER_ID_LENGTH
from app.db import Base

CODE_LENGTH = 16  # secrets.token_urlsafe(9): 12 characters, 72 random bits


class RewardStatus(StrEnum):
    """Where an accepted invite's reward stands."""

    WAITING = "waiting"  # the invitee has paid no order since accepting
    GRANTED = "granted"  # a grant job gives inviter and invitee one coupon each
    # The invitee paid, but no reward could be granted: no reward coupon configured
    # (SECKILL_INVITE_REWARD_COUPON_ID unset), or the coupon is missing, expired or in a
    # campaign not approved yet (`reward_error` says which). Visible in the report.
    FAILED = "failed"


_STATUSES = ", ".join(f"'{s}'" for s in RewardStatus)


class InviteCode(Base):
    __tablename__ = "invite_codes"

    user_id: Mapped[str] = mapped_column(String(MAX_USER_ID_LENGTH), primary_key=True)
    code: Mapped[str] = mapped_column(String(CODE_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Invite(Base):
    __tablename__ = "invites"
    __table_args__ = (
        CheckConstraint("inviter_id <> invitee_id", name="not_self"),
        CheckConstraint(f"reward_status IN ({_STATUSES})", name="reward_status_known"),
        CheckConstraint(
            "(reward_status = 'waiting') = (rewarded_order_id IS NULL)", name="paid_when_decided"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(ForeignKey("invite_codes.code"))
    inviter_id: Mapped[str] = mapped_column(String(MAX_USER_ID_LENGTH), index=True)
    # One invite per invitee, ever: a second code is refused.
    invitee_id: Mapped[str] = mapped_column(String(MAX_USER_ID_LENGTH), unique=True)
    accepted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    reward_status: Mapped[str] = mapped_column(
        String(20), server_default=RewardStatus.WAITING.value
    )
    # The invitee's first paid order, which decided the reward.
    rewarded_order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"), index=True)
    reward_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    reward_error: Mapped[str | None] = mapped_column(String(500))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
