"""The simulated gateway's settlement ledger: every charge and refund it made, in
Postgres so that every API process (they are stateless, several run at once) shares it
and a charge stays idempotent per order across them. A real provider keeps its own."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, Numeric, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class GatewaySettlement(Base):
    __tablename__ = "gateway_settlements"
    __table_args__ = (
        CheckConstraint("kind IN ('charge', 'refund')", name="kind_known"),
        # Idempotency: one charge per order, one refund per charge.
        Index(
            "uq_gateway_settlements_charge_order_id",
            "order_id",
            unique=True,
            postgresql_where=text("kind = 'charge'"),
        ),
        Index(
            "uq_gateway_settlements_refund_charge_id",
            "charge_id",
            unique=True,
            postgresql_where=text("kind = 'refund'"),
        ),
        # The settlement file is one day of rows.
        Index("ix_gateway_settlements_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    charge_id: Mapped[str] = mapped_column(String(128))
    order_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(10))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
