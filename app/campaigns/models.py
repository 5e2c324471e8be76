from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base

MONEY = Numeric(12, 2)


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"


class Phase(StrEnum):
    WARM_UP = "warm_up"
    PEAK = "peak"
    RETURN = "return"


_STATUSES = ", ".join(f"'{s}'" for s in CampaignStatus)


class Campaign(Base):
    """One promotion plan: its phases, rules, targets and channels. Its events, coupons
    and promotions sell nothing until it is approved."""

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUSES})", name="status_known"),
        CheckConstraint("peak_starts_at < peak_ends_at", name="peak_ordered"),
        CheckConstraint(
            "(warm_up_starts_at IS NULL) = (warm_up_ends_at IS NULL)", name="warm_up_whole"
        ),
        CheckConstraint(
            "(return_starts_at IS NULL) = (return_ends_at IS NULL)", name="return_whole"
        ),
        CheckConstraint("rules_version >= 1", name="rules_version_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    # IANA name: the campaign's days (daily promotion limits) are counted in it.
    timezone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    status: Mapped[str] = mapped_column(String(20), server_default=CampaignStatus.DRAFT.value)
    warm_up_starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    warm_up_ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    peak_starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    peak_ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    return_starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    return_ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The current rules (version `rules_version`); every version is in campaign_rules.
    rules: Mapped[str] = mapped_column(Text)
    rules_version: Mapped[int] = mapped_column(Integer, server_default="1")
    target_gmv: Mapped[Decimal | None] = mapped_column(MONEY)
    target_orders: Mapped[int | None] = mapped_column(Integer)
    target_new_buyers: Mapped[int | None] = mapped_column(Integer)
    baseline_campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"))
    created_by: Mapped[str] = mapped_column(String(128))
    # Who submitted it for approval (never one of its approvers), and which submission
    # this is: approvals count within one submission, a rejection starts over.
    submitted_by: Mapped[str | None] = mapped_column(String(128))
    submission: Mapped[int] = mapped_column(Integer, server_default="0")
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    channels: Mapped[list["CampaignChannel"]] = relationship(
        order_by="CampaignChannel.code", lazy="selectin", cascade="all, delete-orphan"
    )

    @property
    def approved(self) -> bool:
        return self.status == CampaignStatus.APPROVED


class CampaignChannel(Base):
    """A channel the campaign is promoted through, with what it cost (the report's ROI)."""

    __tablename__ = "campaign_channels"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    cost: Mapped[Decimal] = mapped_column(MONEY)


class CampaignRules(Base):
    """Every version of a campaign's rules, as shoppers were shown them."""

    __tablename__ = "campaign_rules"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    rules: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CampaignApproval(Base):
    """One operator's approval of one submission, for one of the required groups."""

    __tablename__ = "campaign_approvals"
    __table_args__ = (
        # One approver per group, and one group per approver, within a submission.
        UniqueConstraint("campaign_id", "submission", "approver_group"),
        UniqueConstraint("campaign_id", "submission", "actor"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    submission: Mapped[int] = mapped_column(Integer)
    approver_group: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
