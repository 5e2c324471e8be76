from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.campaigns.models import Campaign
from app.db import Base
from app.inventory.scopes import in_scope

MONEY = Numeric(12, 2)


class Promotion(Base):
    """满减 for the first `daily_limit` regular orders of each day (the campaign's
    timezone, else UTC) whose eligible subtotal reaches `min_spend`."""

    __tablename__ = "promotions"
    __table_args__ = (
        CheckConstraint("starts_at < ends_at", name="window_ordered"),
        CheckConstraint("amount_off > 0", name="amount_off_positive"),
        CheckConstraint("min_spend >= 0", name="min_spend_not_negative"),
        CheckConstraint("daily_limit >= 1", name="daily_limit_positive"),
        CheckConstraint("per_user_daily_limit >= 1", name="per_user_daily_limit_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), index=True)
    amount_off: Mapped[Decimal] = mapped_column(MONEY)
    min_spend: Mapped[Decimal] = mapped_column(MONEY)
    scope_skus: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))
    scope_categories: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    daily_limit: Mapped[int] = mapped_column(Integer)
    per_user_daily_limit: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    # Its campaign's status holds it back from shoppers until approved; its timezone
    # draws the days.
    campaign: Mapped[Campaign | None] = relationship(lazy="joined")

    @property
    def scoped(self) -> bool:
        return self.scope_skus is not None or self.scope_categories is not None

    def covers(self, sku: str, category: str | None) -> bool:
        """Does a line of this SKU (and category) count towards min_spend?"""
        return in_scope(sku, category, skus=self.scope_skus, categories=self.scope_categories)
