"""Returns' figures for the sale and campaign reports and the live stats."""

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.members.stats_repository import Scope
from app.returns import repository
from app.returns.models import ReturnReason

# The reports' and the live stats' field descriptions (one wording everywhere).
RETURNS_BY_REASON = (
    "Returns asked for, whatever their decision, per reason (every reason present, 0 for none)."
)
REFUND_RATE = (
    "Refunded orders / orders ever paid (paid, shipped or refunded; a refund through a "
    "return or an operator's alike), 4 decimals; null without a paid order."
)


class AfterSales(BaseModel):
    returns_by_reason: dict[ReturnReason, int] = Field(description=RETURNS_BY_REASON)
    refund_rate: float | None = Field(description=REFUND_RATE)


async def after_sales(
    *, session: AsyncSession, scope: Scope, scope_id: int, item_id: int | None = None
) -> AfterSales:
    """The returns and refunds of an event's or a campaign's orders (or one item's)."""
    counted = await repository.returns_by_reason(
        session, scope=scope, scope_id=scope_id, item_id=item_id
    )
    refunded, paid = await repository.refund_counts(
        session, scope=scope, scope_id=scope_id, item_id=item_id
    )
    return AfterSales(
        returns_by_reason={reason: counted.get(reason.value, 0) for reason in ReturnReason},
        refund_rate=round(refunded / paid, 4) if paid else None,
    )
