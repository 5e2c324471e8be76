"""The simulated gateway's SQL: its settlement ledger (app/gateways/models.py)."""

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.gateways.models import GatewaySettlement


async def insert_charge(
    session: AsyncSession, *, charge_id: str, order_id: str, amount: Decimal
) -> GatewaySettlement:
    """The order's charge: this one, or the one made first (idempotent per order)."""
    await session.execute(
        text(
            """
            INSERT INTO gateway_settlements (charge_id, order_id, kind, amount)
            VALUES (:charge_id, :order_id, 'charge', :amount)
            ON CONFLICT (order_id) WHERE kind = 'charge' DO NOTHING
            """
        ),
        {"charge_id": charge_id, "order_id": order_id, "amount": amount},
    )
    found = await find_charge(session, order_id)
    assert found is not None, "just inserted, or there before"
    return found


async def find_charge(session: AsyncSession, order_id: str) -> GatewaySettlement | None:
    row: GatewaySettlement | None = await session.scalar(
        select(GatewaySettlement).where(
            GatewaySettlement.order_id == order_id, GatewaySettlement.kind == "charge"
        )
    )
    return row


async def find_charges(session: AsyncSession, order_ids: Sequence[str]) -> list[GatewaySettlement]:
    rows = await session.scalars(
        select(GatewaySettlement).where(
            GatewaySettlement.order_id.in_(order_ids), GatewaySettlement.kind == "charge"
        )
    )
    return list(rows.all())


async def insert_refund(
    session: AsyncSession, *, charge_id: str, order_id: str, amount: Decimal
) -> bool:
    """True if this refund is the charge's first (idempotent per charge)."""
    inserted = await session.scalar(
        text(
            """
            INSERT INTO gateway_settlements (charge_id, order_id, kind, amount)
            VALUES (:charge_id, :order_id, 'refund', :amount)
            ON CONFLICT (charge_id) WHERE kind = 'refund' DO NOTHING
            RETURNING id
            """
        ),
        {"charge_id": charge_id, "order_id": order_id, "amount": amount},
    )
    return inserted is not None


async def is_refunded(session: AsyncSession, charge_id: str) -> bool:
    found = await session.scalar(
        select(GatewaySettlement.id).where(
            GatewaySettlement.charge_id == charge_id, GatewaySettlement.kind == "refund"
        )
    )
    return found is not None


async def entries_between(
    session: AsyncSession, *, since: datetime, until: datetime
) -> list[GatewaySettlement]:
    rows = await session.scalars(
        select(GatewaySettlement)
        .where(GatewaySettlement.at >= since, GatewaySettlement.at < until)
        .order_by(GatewaySettlement.at, GatewaySettlement.id)
    )
    return list(rows.all())
