"""The reconciliation's SQL: the orders a settlement file speaks of, and the results."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.payments.reconciliation_models import Reconciliation

# What counts as paid: `shipped` (issue 22's shipping) is a paid order on its way.
PAID = ("paid", "shipped")
REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class OrderMoney:
    id: str
    status: str
    amount: Decimal
    payment_reference: str | None


async def orders_by_id(session: AsyncSession, order_ids: Sequence[str]) -> dict[str, OrderMoney]:
    rows = await session.execute(
        text("SELECT id, status, amount, payment_reference FROM orders WHERE id = ANY(:ids)"),
        {"ids": list(order_ids)},
    )
    return {r.id: OrderMoney(r.id, r.status, r.amount, r.payment_reference) for r in rows}


async def settled_between(
    session: AsyncSession, *, since: datetime, until: datetime
) -> tuple[list[OrderMoney], list[OrderMoney]]:
    """Orders paid in [since, until) (refunded since or not), and orders refunded in it."""
    rows = await session.execute(
        text(
            """
            SELECT id, status, amount, payment_reference,
                   paid_at >= :since AND paid_at < :until AS paid_in,
                   refunded_at >= :since AND refunded_at < :until AS refunded_in
            FROM orders
            WHERE payment_reference IS NOT NULL
              AND status IN ('paid', 'shipped', 'refunded')
              AND ((paid_at >= :since AND paid_at < :until)
                   OR (refunded_at >= :since AND refunded_at < :until))
            """
        ),
        {"since": since, "until": until},
    )
    paid, refunded = [], []
    for r in rows:
        money = OrderMoney(r.id, r.status, r.amount, r.payment_reference)
        if r.paid_in:
            paid.append(money)
        if r.refunded_in and r.status == REFUNDED:
            refunded.append(money)
    return paid, refunded


async def insert(session: AsyncSession, row: Reconciliation) -> Reconciliation:
    session.add(row)
    await session.flush()
    return row


async def get(session: AsyncSession, reconciliation_id: int) -> Reconciliation | None:
    return await session.get(Reconciliation, reconciliation_id)


async def latest(session: AsyncSession) -> Reconciliation | None:
    found: Reconciliation | None = await session.scalar(
        select(Reconciliation).order_by(Reconciliation.id.desc()).limit(1)
    )
    return found


async def page(session: AsyncSession, *, limit: int, offset: int) -> list[Reconciliation]:
    rows = await session.scalars(
        select(Reconciliation).order_by(Reconciliation.id.desc()).limit(limit).offset(offset)
    )
    return list(rows.all())
